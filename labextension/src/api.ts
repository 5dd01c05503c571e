/**
 * Requests to nbtrack's server extension (docs/server-api.md), through
 * ServerConnection so that the server's token, cookies and XSRF rules apply.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { chooseUiAddress } from './links';
import { IRunRecord, parseRecord, safeHttpUrl } from './record';

export interface IStoreRuns {
  readonly trackingUri: string | null;
  /** A running MLflow UI for the store (already checked to be http(s)), or null. */
  readonly uiUrl: string | null;
  readonly runs: IRunRecord[];
}

/** The runs the notebook's tracking store holds for it, newest first. */
export async function fetchStoreRuns(notebookPath: string): Promise<IStoreRuns> {
  const body = await request('runs', notebookPath, 'GET');
  const runs: IRunRecord[] = [];
  for (const item of Array.isArray(body['runs']) ? body['runs'] : []) {
    const parsed = parseRecord(item);
    if (parsed.ok) {
      runs.push(parsed.record);
    }
  }
  return {
    trackingUri: typeof body['tracking_uri'] === 'string' ? body['tracking_uri'] : null,
    uiUrl: safeHttpUrl(body['ui_url']),
    runs
  };
}

/**
 * The address of an MLflow UI for the notebook's store, or null when none
 * runs; with `start`, the server starts one first if needed.
 */
export async function mlflowUi(notebookPath: string, start: boolean): Promise<string | null> {
  const body = await request('ui', notebookPath, start ? 'POST' : 'GET');
  return chooseUiAddress(
    typeof body['url'] === 'string' ? body['url'] : null,
    typeof body['proxy_url'] === 'string' ? body['proxy_url'] : null,
    window.location.href
  );
}

async function request(
  endpoint: string,
  notebookPath: string,
  method: 'GET' | 'POST'
): Promise<Record<string, unknown>> {
  const settings = ServerConnection.makeSettings();
  const url =
    URLExt.join(settings.baseUrl, 'nbtrack', 'api', endpoint) +
    URLExt.objectToQueryString({ path: notebookPath });
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { method }, settings);
  } catch (err) {
    throw new Error(`cannot reach the Jupyter server (${String(err)})`);
  }
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const data =
    typeof body === 'object' && body !== null && !Array.isArray(body)
      ? (body as Record<string, unknown>)
      : {};
  if (!response.ok) {
    if (response.status === 404 && typeof data['reason'] !== 'string') {
      throw new Error(
        'the nbtrack server extension is not enabled ' +
          '(jupyter server extension enable nbtrack.server)'
      );
    }
    const reason = typeof data['reason'] === 'string' ? data['reason'] : response.statusText;
    throw new Error(`${response.status}: ${reason}`);
  }
  return data;
}
