/**
 * Which curves go on which chart. DOM-free.
 *
 * The record decides: its `panels` were grouped once, in Python, when the
 * record was written (docs/record-schema.md), and the same panels are what the
 * HTML/SVG fallback draws. Nothing here looks at metric names, so JupyterLab
 * and the fallback can never group a run differently.
 */
import { Goal, IMetricSummary, IRunRecord, XAxis } from './record';
import { ISweep } from './sweep';

/** A sweep's trials drawn on its chart at most, best first. */
const MAX_DRAWN_TRIALS = 20;

export interface ISeriesSpec {
  readonly label: string;
  /** Whether lower or higher is better, when the record says. */
  readonly goal?: Goal;
  readonly steps: readonly number[];
  readonly values: readonly number[];
  /** Seconds since the run started, one per point; null when unknown. */
  readonly times?: readonly number[] | null;
  /** When the run started (epoch ms), for clock time; null when unknown. */
  readonly startTime?: number | null;
}

export interface IChartSpec {
  readonly title: string;
  readonly series: readonly ISeriesSpec[];
  /** A log scale only makes sense when every plotted value is positive. */
  readonly logAllowed: boolean;
  /** The axis the record chose: the step, or time where the steps do not line up. */
  readonly defaultX: XAxis;
  /** The axes every series of the chart can be drawn against (the step always). */
  readonly xChoices: readonly XAxis[];
}

/** What each x axis is called on a chart. */
export const X_TITLES: Readonly<Record<XAxis, string>> = {
  step: 'step',
  relative: 'time since start',
  wall: 'wall-clock time'
};

/** Charts for one run: one per panel of its record, in the record's order. */
export function runCharts(record: IRunRecord): IChartSpec[] {
  return Private.panelCharts(
    record.panels.map((names, i) => ({ names, axis: record.panelX[i] ?? 'step' })),
    [{ record, label: name => name }]
  );
}

/**
 * Charts comparing runs, series labelled "<run label> · <metric>". A metric
 * goes on the chart its record's panel put it on; panels of different runs
 * that share a metric name become one chart (see `mergePanels`).
 */
export function overlayCharts(
  runs: ReadonlyArray<{ readonly label: string; readonly record: IRunRecord }>
): IChartSpec[] {
  const records = runs.map(r => r.record);
  return Private.panelCharts(
    mergePanels(records).map(names => ({ names, axis: mergedAxis(records, names) })),
    runs.map(({ label, record }) => ({ record, label: (name: string) => `${label} · ${name}` }))
  );
}

/**
 * The axis of a merged panel: time since start when any run's panel of these
 * metrics needs it to line its curves up, else the step.
 */
function mergedAxis(records: readonly IRunRecord[], names: readonly string[]): XAxis {
  for (const record of records) {
    for (const [i, panel] of record.panels.entries()) {
      if (record.panelX[i] === 'relative' && panel.some(name => names.includes(name))) {
        return 'relative';
      }
    }
  }
  return 'step';
}

/** The chart of the trials' curves of the sweep's metric, the best trial first. */
export function trialsChart(sweep: ISweep): IChartSpec | null {
  const drawn = sweep.trials.filter(t => t.curve !== null).slice(0, MAX_DRAWN_TRIALS);
  if (!drawn.length) {
    return null;
  }
  const metric = sweep.metric ?? 'value';
  return {
    title: `${metric} of each trial`,
    series: drawn.map(t => ({
      label: t.number === sweep.best ? `#${t.number} (best)` : `#${t.number}${t.state === 'PRUNED' ? ' pruned' : ''}`,
      goal: sweep.goal,
      steps: t.curve?.steps ?? [],
      values: t.curve?.values ?? []
    })),
    logAllowed: drawn.every(t => (t.curve?.values ?? []).every(v => v > 0)),
    defaultX: 'step',
    xChoices: ['step']
  };
}

/**
 * A series' x values on an axis: steps, seconds since the run started, or
 * clock time in seconds (what uPlot's time scale takes); null when the series
 * has no times.
 */
export function xValues(s: ISeriesSpec, axis: XAxis): readonly number[] | null {
  if (axis === 'step') {
    return s.steps;
  }
  if (!s.times) {
    return null;
  }
  if (axis === 'relative') {
    return s.times;
  }
  const start = s.startTime;
  return typeof start === 'number' ? s.times.map(t => start / 1000 + t) : null;
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
 * Put curves on a common x axis for plotting: the sorted union of all x values
 * (steps by default), with null where a curve has no point (and for NaN or
 * infinite values, which cannot be drawn).
 */
export function alignSeries(
  series: readonly ISeriesSpec[],
  axis: XAxis = 'step'
): {
  xs: number[];
  ys: Array<Array<number | null>>;
} {
  const columns = series.map(s => xValues(s, axis) ?? s.steps);
  const allXs = new Set<number>();
  for (const column of columns) {
    for (const x of column) {
      allXs.add(x);
    }
  }
  const xs = [...allXs].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s, k) => {
    const column: Array<number | null> = new Array(xs.length).fill(null);
    columns[k].forEach((x, i) => {
      const v = s.values[i];
      column[index.get(x)!] = Number.isFinite(v) ? v : null;
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
    panels: ReadonlyArray<{ readonly names: ReadonlyArray<string>; readonly axis: XAxis }>,
    runs: ReadonlyArray<{ readonly record: IRunRecord; readonly label: (metric: string) => string }>
  ): IChartSpec[] {
    const charts: IChartSpec[] = [];
    for (const { names, axis } of panels) {
      const members: ISeriesSpec[] = [];
      const drawn = new Set<string>();
      for (const { record, label } of runs) {
        for (const name of names) {
          const s = series(record, name, label(name));
          if (s) {
            members.push(s);
            drawn.add(name);
          }
        }
      }
      if (members.length > 0) {
        const xChoices = (['step', 'relative', 'wall'] as XAxis[]).filter(choice =>
          members.every(s => xValues(s, choice) !== null)
        );
        charts.push({
          title: names.filter(name => drawn.has(name)).join(', '),
          series: members,
          logAllowed: members.every(allPositive),
          defaultX: xChoices.includes(axis) ? axis : 'step',
          xChoices
        });
      }
    }
    return charts;
  }

  /** A metric's curve as a series; null when there is no line to draw (under 2 points). */
  function series(record: IRunRecord, name: string, label: string): ISeriesSpec | null {
    const metric: IMetricSummary | undefined = record.metrics.get(name);
    if (!metric || metric.curve === null || metric.curve.steps.length < 2) {
      return null;
    }
    return { label, goal: metric.goal, ...metric.curve, startTime: record.run.startTime };
  }

  function allPositive(s: ISeriesSpec): boolean {
    return s.values.every(v => !Number.isFinite(v) || v > 0);
  }
}
