/**
 * The full view of one run record: header, error, metrics, params and charts.
 * Used by the output renderer; all record text goes in as text.
 *
 * What it draws is bounded whatever the record holds (a hand-written or old
 * record may list thousands of metrics): the first charts and table rows, and
 * buttons that open the rest a batch at a time; each chart draws a bounded number
 * of curves and points (charts.ts) and says which it leaves out.
 */
import { chartBatches } from './chart';
import { runCharts, trialsChart } from './charts';
import { el, externalLink, statusBadge, textTable } from './dom';
import { formatDuration, formatNumber, formatTime } from './format';
import { IRunRecord } from './record';
import { bestParams, trialsTable } from './sweep';

/** Params beyond this many are folded away behind a "show all" toggle. */
const PARAMS_SHOWN_OPEN = 12;
/** Metric rows listed at first, and how many more each click opens. */
export const METRIC_ROWS_PER_BATCH = 50;

export function recordView(
  record: IRunRecord,
  warnings: readonly string[]
): { node: HTMLDivElement; dispose: () => void } {
  const trials = record.sweep ? trialsChart(record.sweep) : null;
  const charts = chartBatches(trials ? [trials, ...runCharts(record)] : runCharts(record));
  const node = el(
    'div',
    { className: 'nbtrack-record' },
    header(record),
    errorBox(record),
    syncNote(record),
    sweepSection(record),
    metricsTable(record),
    omittedNote(record),
    paramsTable(record),
    charts.node,
    warningsNote(warnings)
  );
  return { node, dispose: charts.dispose };
}

function omittedNote(record: IRunRecord): HTMLElement | null {
  if (record.metricsOmitted <= 0) {
    return null;
  }
  const where = record.uiUrl ? ' (open the run in MLflow)' : '';
  return el('div', {
    className: 'nbtrack-record-note',
    text: `${record.metricsOmitted} more metrics are in MLflow only${where}.`
  });
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
  const head = ['metric', 'last', 'best', 'min', 'max', 'points'];
  const table = textTable('nbtrack-table nbtrack-metrics', head, rows.slice(0, METRIC_ROWS_PER_BATCH));
  if (rows.length <= METRIC_ROWS_PER_BATCH) {
    return table;
  }
  let shown = METRIC_ROWS_PER_BATCH;
  const more = el('button', { className: 'nbtrack-more nbtrack-more-metrics' });
  const label = (): string =>
    `Show ${Math.min(rows.length - shown, METRIC_ROWS_PER_BATCH)} more of ${rows.length} metrics`;
  more.textContent = label();
  more.addEventListener('click', () => {
    const next = textTable('nbtrack-table', head, rows.slice(shown, shown + METRIC_ROWS_PER_BATCH));
    const body = table.tBodies[0];
    for (const row of [...next.tBodies[0].rows]) {
      body.appendChild(row);
    }
    shown += METRIC_ROWS_PER_BATCH;
    more.hidden = shown >= rows.length;
    more.textContent = label();
  });
  return el('div', { className: 'nbtrack-metrics-box' }, table, more);
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

/** A sweep's trials ranked by its metric, the best marked, and its params to copy. */
function sweepSection(record: IRunRecord): HTMLElement | null {
  const sweep = record.sweep;
  if (!sweep) {
    return null;
  }
  const table = trialsTable(sweep);
  const best = bestParams(sweep);
  const more = sweep.trialsOmitted ? `; ${sweep.trialsOmitted} more trials in MLflow` : '';
  return el(
    'div',
    { className: 'nbtrack-sweep' },
    el('div', {
      className: 'nbtrack-sweep-summary',
      text: `Sweep: ${sweep.sampler} search, ${sweep.trials.length} trials, study ${sweep.study}${more}`
    }),
    textTable('nbtrack-trials', table.header, table.rows),
    best
      ? el(
          'div',
          { className: 'nbtrack-best-params' },
          el('div', { text: `Best params (trial #${sweep.best}), to paste into the cell or as a dict:` }),
          el('pre', { text: best.lines }),
          el('pre', { text: best.dict })
        )
      : null
  );
}
