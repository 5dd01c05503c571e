/**
 * The full view of one run record: header, error, metrics, params and charts.
 * Used by the output renderer; all record text goes in as text.
 */
import { chartGrid } from './chart';
import { runCharts } from './charts';
import { el, externalLink, statusBadge, textTable } from './dom';
import { formatDuration, formatNumber, formatTime } from './format';
import { IRunRecord } from './record';

/** Params beyond this many are folded away behind a "show all" toggle. */
const PARAMS_SHOWN_OPEN = 12;

export function recordView(
  record: IRunRecord,
  warnings: readonly string[]
): { node: HTMLDivElement; dispose: () => void } {
  const charts = chartGrid(runCharts(record));
  const node = el(
    'div',
    { className: 'nbtrack-record' },
    header(record),
    errorBox(record),
    syncNote(record),
    metricsTable(record),
    paramsTable(record),
    charts.node,
    warningsNote(warnings)
  );
  return { node, dispose: charts.dispose };
}

function header(record: IRunRecord): HTMLElement {
  const run = record.run;
  const facts: string[] = [];
  if (run.experimentName) {
    facts.push(`experiment ${run.experimentName}`);
  }
  facts.push(`started ${formatTime(run.startTime)}`);
  facts.push(run.status === 'RUNNING' ? 'running' : `took ${formatDuration(run.durationS)}`);
  return el(
    'div',
    { className: 'nbtrack-record-head' },
    statusBadge(run.status),
    el('span', { className: 'nbtrack-record-name', text: run.name, title: run.id ?? '' }),
    el('span', { className: 'nbtrack-record-facts', text: facts.join(' · ') }),
    record.uiUrl ? externalLink(record.uiUrl, 'Open in MLflow ↗', 'nbtrack-mlflow-link') : null
  );
}

function errorBox(record: IRunRecord): HTMLElement | null {
  const error = record.error;
  if (!error) {
    return null;
  }
  const where = error.step === null ? '' : ` (at step ${error.step})`;
  return el('div', {
    className: 'nbtrack-record-error',
    text: `${error.type}: ${error.message}${where}`
  });
}

function syncNote(record: IRunRecord): HTMLElement | null {
  const sync = record.sync;
  if (!sync || sync.state === 'synced') {
    return null;
  }
  const pending = sync.pendingPoints > 0 ? `, ${sync.pendingPoints} points not yet in MLflow` : '';
  return el('div', { className: 'nbtrack-record-note', text: `sync: ${sync.state}${pending}` });
}

function metricsTable(record: IRunRecord): HTMLElement | null {
  if (record.metrics.size === 0) {
    return null;
  }
  const rows = [...record.metrics].map(([name, m]) => {
    const best =
      m.goal === null || m.best === null
        ? '—'
        : `${formatNumber(m.best)}${m.bestStep === null ? '' : ` @ ${m.bestStep}`} (${m.goal})`;
    const nonfinite = m.nonfinite > 0 ? ` (${m.nonfinite} not finite)` : '';
    return [
      name,
      formatNumber(m.last),
      best,
      formatNumber(m.min),
      formatNumber(m.max),
      `${m.count === null ? '—' : m.count}${nonfinite}`
    ];
  });
  return textTable(
    'nbtrack-table nbtrack-metrics',
    ['metric', 'last', 'best', 'min', 'max', 'points'],
    rows
  );
}

function paramsTable(record: IRunRecord): HTMLElement | null {
  if (record.params.size === 0) {
    return null;
  }
  const table = textTable('nbtrack-table nbtrack-params', ['param', 'value'], [
    ...record.params.entries()
  ]);
  const details = el(
    'details',
    { className: 'nbtrack-params-box' },
    el('summary', { text: `params (${record.params.size})` }),
    table
  );
  details.open = record.params.size <= PARAMS_SHOWN_OPEN;
  return details;
}

function warningsNote(warnings: readonly string[]): HTMLElement | null {
  if (warnings.length === 0) {
    return null;
  }
  return el('div', {
    className: 'nbtrack-record-note',
    text: `Parts of this record were unreadable: ${warnings.join('; ')}`
  });
}
