/**
 * Addresses in the MLflow UI. DOM-free.
 *
 * MLflow's UI is a single-page app routed by the URL fragment, so a run's page
 * is `<base>#/experiments/<exp>/runs/<run>` and the comparison page is
 * `<base>#/compare-runs?runs=[...]&experiments=[...]` with JSON lists.
 */
import { safeHttpUrl } from './record';

/**
 * MLflow 3's UI opens experiments in its GenAI view unless the address says
 * otherwise (nbtrack.ui.registry.TRAINING_VIEW); it keeps it while navigating.
 */
export const TRAINING_VIEW = 'workflowType=machine_learning';

/** The UI's base address (no fragment, no query) from any http(s) UI URL, else null. */
export function uiBase(url: string | null | undefined): string | null {
  const safe = safeHttpUrl(url);
  if (safe === null) {
    return null;
  }
  const parsed = new URL(safe);
  parsed.hash = '';
  parsed.search = '';
  return parsed.href;
}

export interface IRunRef {
  readonly id: string | null;
  readonly experimentId: string | null;
}

/**
 * MLflow's own comparison view of these runs, or null when the base is not an
 * http(s) URL or fewer than two runs have an id.
 */
export function compareRunsUrl(base: string | null, runs: readonly IRunRef[]): string | null {
  const root = uiBase(base);
  if (root === null) {
    return null;
  }
  const ids = unique(runs.map(r => r.id));
  if (ids.length < 2) {
    return null;
  }
  const experiments = unique(runs.map(r => r.experimentId));
  const query =
    `runs=${encodeURIComponent(JSON.stringify(ids))}` +
    `&experiments=${encodeURIComponent(JSON.stringify(experiments))}` +
    `&${TRAINING_VIEW}`;
  return `${root}#/compare-runs?${query}`;
}

/** A run's own page under a UI base, or null without an http(s) base or ids. */
export function runUrl(base: string | null, run: IRunRef): string | null {
  const root = uiBase(base);
  if (root === null || run.id === null || run.experimentId === null) {
    return null;
  }
  return (
    `${root}#/experiments/${encodeURIComponent(run.experimentId)}` +
    `/runs/${encodeURIComponent(run.id)}?${TRAINING_VIEW}`
  );
}

function unique(values: ReadonlyArray<string | null>): string[] {
  return [...new Set(values.filter((v): v is string => v !== null))];
}

/**
 * The MLflow UI address to give the user: the one through Jupyter's proxy
 * whenever the server offers it (behind Jupyter's login; a UI on 127.0.0.1 has
 * none, and every user of the machine can reach it), else the direct one.
 * `proxyUrl` may be relative to the page. Null when neither is an http(s) URL.
 */
export function chooseUiAddress(
  url: string | null,
  proxyUrl: string | null,
  pageUrl: string
): string | null {
  const direct = safeHttpUrl(url);
  let proxied: string | null = null;
  if (typeof proxyUrl === 'string') {
    try {
      proxied = safeHttpUrl(new URL(proxyUrl, pageUrl).href);
    } catch {
      proxied = null;
    }
  }
  return proxied ?? direct;
}
