/**
 * Side-by-side view of selected runs: the params that differ, a summary of
 * each run's headline metrics, overlaid curves, and a link to MLflow's own
 * comparison page.
 */
import { chartBatches } from './chart';
import { overlayCharts } from './charts';
import { el, externalLink, textTable } from './dom';
import { formatNumber } from './format';
import { compareRunsUrl } from './links';
import { IRunRecord } from './record';
import { differingParams } from './runs';

export function compareView(
  records: readonly IRunRecord[],
  uiBaseUrl: string | null
): { node: HTMLDivElement; dispose: () => void } {
  const labels = runLabels(records);
  const diffs = differingParams(records);
  const paramsPart =
    diffs.length > 0
      ? textTable(
          'nbtrack-table nbtrack-param-diff',
          ['param', ...labels],
          diffs.map(d => [d.name, ...d.values.map(v => v ?? '—')])
        )
      : el('div', { className: 'nbtrack-runs-note', text: 'These runs have the same params.' });

  const metricNames = [...new Set(records.flatMap(r => [...r.metrics.keys()]))];
  const metricsPart =
    metricNames.length > 0
      ? textTable(
          'nbtrack-table nbtrack-metric-compare',
          ['metric', ...labels],
          metricNames.map(name => [
            name,
            ...records.map(r => {
              const m = r.metrics.get(name);
              if (!m) {
                return '—';
              }
              return formatNumber(m.goal !== null && m.best !== null ? m.best : m.last);
            })
          ])
        )
      : null;

  // Batched like a record's charts: a hostile record may hold thousands of panels.
  const charts = chartBatches(
    overlayCharts(records.map((record, i) => ({ label: labels[i], record })))
  );
  const withoutCurves = records
    .map((r, i) => ({ r, label: labels[i] }))
    .filter(({ r }) => ![...r.metrics.values()].some(m => m.curve !== null));
  const curvesNote =
    withoutCurves.length > 0
      ? el('div', {
          className: 'nbtrack-runs-note',
          text: `No curves recorded for: ${withoutCurves.map(x => x.label).join(', ')}`
        })
      : null;

  const mlflowLink = compareRunsUrl(uiBaseUrl, records.map(r => r.run));
  const node = el(
    'div',
    { className: 'nbtrack-compare' },
    el('h3', { className: 'nbtrack-runs-section', text: `Comparing ${records.length} runs` }),
    mlflowLink
      ? externalLink(mlflowLink, 'Compare in MLflow ↗', 'nbtrack-mlflow-link nbtrack-mlflow-compare')
      : el('div', {
          className: 'nbtrack-runs-note',
          text: 'Start the MLflow UI to compare these runs there too.'
        }),
    el('h4', { text: 'Params that differ' }),
    paramsPart,
    metricsPart ? el('h4', { text: 'Metrics (best, else last)' }) : null,
    metricsPart,
    curvesNote,
    charts.node
  );
  return { node, dispose: charts.dispose };
}

/** Run names as column labels, made unique when two runs share a name. */
function runLabels(records: readonly IRunRecord[]): string[] {
  const names = records.map(r => r.run.name);
  return names.map((name, i) => {
    const clash = names.filter(n => n === name).length > 1;
    if (!clash) {
      return name;
    }
    const id = records[i].run.id;
    return id ? `${name} (${id.slice(0, 6)})` : `${name} #${i + 1}`;
  });
}
