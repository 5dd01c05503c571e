/**
 * Which curves go on which chart. DOM-free.
 *
 * The record decides: its `panels` were grouped once, in Python, when the
 * record was written (docs/record-schema.md), and the same panels are what the
 * HTML/SVG fallback draws. Nothing here looks at metric names, so JupyterLab
 * and the fallback can never group a run differently.
 */
import { Goal, IMetricSummary, IRunRecord } from './record';

export interface ISeriesSpec {
  readonly label: string;
  /** Whether lower or higher is better, when the record says. */
  readonly goal?: Goal;
  readonly steps: readonly number[];
  readonly values: readonly number[];
}

export interface IChartSpec {
  readonly title: string;
  readonly series: readonly ISeriesSpec[];
  /** A log scale only makes sense when every plotted value is positive. */
  readonly logAllowed: boolean;
}

/** Charts for one run: one per panel of its record, in the record's order. */
export function runCharts(record: IRunRecord): IChartSpec[] {
  return Private.panelCharts(record.panels, [{ record, label: name => name }]);
}

/**
 * Charts comparing runs, series labelled "<run label> · <metric>". A metric
 * goes on the chart its record's panel put it on; panels of different runs
 * that share a metric name become one chart (see `mergePanels`).
 */
export function overlayCharts(
  runs: ReadonlyArray<{ readonly label: string; readonly record: IRunRecord }>
): IChartSpec[] {
  return Private.panelCharts(
    mergePanels(runs.map(r => r.record)),
    runs.map(({ label, record }) => ({ record, label: (name: string) => `${label} · ${name}` }))
  );
}

/**
 * The panels of several records as one list: panels that share a metric name
 * are merged (transitively), in the order they first appear, run by run.
 */
export function mergePanels(records: readonly IRunRecord[]): string[][] {
  const merged: string[][] = [];
  for (const record of records) {
    for (const panel of record.panels) {
      const touched = merged.filter(group => panel.some(name => group.includes(name)));
      const target = touched.length > 0 ? touched[0] : [];
      if (touched.length === 0) {
        merged.push(target);
      }
      for (const other of touched.slice(1)) {
        target.push(...other);
        merged.splice(merged.indexOf(other), 1);
      }
      for (const name of panel) {
        if (!target.includes(name)) {
          target.push(name);
        }
      }
    }
  }
  return merged;
}

/**
 * Put curves on a common x axis for plotting: the sorted union of all steps,
 * with null where a curve has no point (and for NaN or infinite values, which
 * cannot be drawn).
 */
export function alignSeries(series: readonly ISeriesSpec[]): {
  xs: number[];
  ys: Array<Array<number | null>>;
} {
  const allSteps = new Set<number>();
  for (const s of series) {
    for (const step of s.steps) {
      allSteps.add(step);
    }
  }
  const xs = [...allSteps].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map(s => {
    const column: Array<number | null> = new Array(xs.length).fill(null);
    s.steps.forEach((step, i) => {
      const v = s.values[i];
      column[index.get(step)!] = Number.isFinite(v) ? v : null;
    });
    return column;
  });
  return { xs, ys };
}

namespace Private {
  /**
   * One chart per panel with at least one line to draw, titled by the metrics
   * on it. Series go run by run, so that each run's curves sit together in the
   * legend.
   */
  export function panelCharts(
    panels: ReadonlyArray<ReadonlyArray<string>>,
    runs: ReadonlyArray<{ readonly record: IRunRecord; readonly label: (metric: string) => string }>
  ): IChartSpec[] {
    const charts: IChartSpec[] = [];
    for (const names of panels) {
      const members: ISeriesSpec[] = [];
      const drawn = new Set<string>();
      for (const { record, label } of runs) {
        for (const name of names) {
          const s = series(record.metrics.get(name), label(name));
          if (s) {
            members.push(s);
            drawn.add(name);
          }
        }
      }
      if (members.length > 0) {
        charts.push({
          title: names.filter(name => drawn.has(name)).join(', '),
          series: members,
          logAllowed: members.every(allPositive)
        });
      }
    }
    return charts;
  }

  /** A metric's curve as a series; null when there is no line to draw (under 2 points). */
  function series(metric: IMetricSummary | undefined, label: string): ISeriesSpec | null {
    if (!metric || metric.curve === null || metric.curve.steps.length < 2) {
      return null;
    }
    return { label, goal: metric.goal, ...metric.curve };
  }

  function allPositive(s: ISeriesSpec): boolean {
    return s.values.every(v => !Number.isFinite(v) || v > 0);
  }
}
