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

// What one chart draws at most, whatever a record holds: the renderer draws in untrusted
// notebooks, and uPlot takes its curves as one table of every x value of the chart by every
// curve, which for thousands of curves at distinct steps exhausts the tab's memory. nbtrack
// writes at most 6 curves of at most 300 points to a panel (docs/record-schema.md), so a record
// it wrote, and a comparison of four such runs, is drawn whole.

/** Curves on one chart at most. */
export const MAX_SERIES_PER_CHART = 24;
/** Points on one chart at most, its curves together: two curves as long as a record keeps. */
export const MAX_POINTS_PER_CHART = 40000;
/**
 * Cells of the table uPlot gets at most: curves times distinct x values, counted as curves
 * times points (no axis can have more distinct x values than the chart has points).
 */
export const MAX_CELLS_PER_CHART = 400000;

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
  /**
   * Labels of the curves of this panel left out to keep the chart within its bounds
   * (`MAX_SERIES_PER_CHART` and the rest), in the record's order; empty for any record nbtrack
   * writes.
   */
  readonly leftOut: readonly string[];
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
  const timed = timedMetrics(records);
  return Private.panelCharts(
    mergePanels(records).map(names => ({
      names,
      axis: names.some(name => timed.has(name)) ? ('relative' as const) : ('step' as const)
    })),
    runs.map(({ label, record }) => ({ record, label: (name: string) => `${label} · ${name}` }))
  );
}

/**
 * The metrics some run draws against time since start to line its curves up: a
 * merged panel holding any of them is drawn against time too, else against the step.
 */
function timedMetrics(records: readonly IRunRecord[]): Set<string> {
  const timed = new Set<string>();
  for (const record of records) {
    for (const [i, panel] of record.panels.entries()) {
      if (record.panelX[i] === 'relative') {
        panel.forEach(name => timed.add(name));
      }
    }
  }
  return timed;
}

/** The chart of the trials' curves of the sweep's metric, the best trial first. */
export function trialsChart(sweep: ISweep): IChartSpec | null {
  const drawn = sweep.trials.filter(t => t.curve !== null).slice(0, MAX_DRAWN_TRIALS);
  if (!drawn.length) {
    return null;
  }
  const metric = sweep.metric ?? 'value';
  const { drawn: series, leftOut } = boundSeries(
    drawn.map(t => ({
      label: t.number === sweep.best ? `#${t.number} (best)` : `#${t.number}${t.state === 'PRUNED' ? ' pruned' : ''}`,
      goal: sweep.goal,
      steps: t.curve?.steps ?? [],
      values: t.curve?.values ?? []
    }))
  );
  return {
    title: `${metric} of each trial`,
    series,
    logAllowed: series.every(s => s.values.every(v => v > 0)),
    defaultX: 'step',
    xChoices: ['step'],
    leftOut: leftOut.map(s => s.label)
  };
}

/**
 * The curves one chart draws, in order, until the next would take it past
 * `MAX_SERIES_PER_CHART`, `MAX_POINTS_PER_CHART` or `MAX_CELLS_PER_CHART`, and the
 * curves left out from there on. The first curve is always drawn: the parsers keep at most
 * 20,000 points of one curve. Linear in the number of curves.
 */
export function boundSeries(series: readonly ISeriesSpec[]): {
  drawn: ISeriesSpec[];
  leftOut: ISeriesSpec[];
} {
  let points = 0;
  let end = 0;
  for (; end < series.length; end++) {
    const n = series[end].steps.length;
    const full =
      end >= MAX_SERIES_PER_CHART ||
      points + n > MAX_POINTS_PER_CHART ||
      (end + 1) * (points + n) > MAX_CELLS_PER_CHART;
    if (end > 0 && full) {
      break;
    }
    points += n;
  }
  return { drawn: series.slice(0, end), leftOut: series.slice(end) };
}

/**
 * The line a chart shows under its plot when it leaves curves out: how many, the first few
 * names, and where their values are; null when it draws them all.
 */
export function leftOutNote(spec: IChartSpec): string | null {
  const n = spec.leftOut.length;
  if (n === 0) {
    return null;
  }
  const named = spec.leftOut.slice(0, LEFT_OUT_NAMED);
  const rest = n - named.length;
  const names = named.join(', ') + (rest > 0 ? ` and ${rest} more` : '');
  return (
    `${n} more ${n === 1 ? 'curve' : 'curves'} of this chart not drawn ` +
    `(a chart draws at most ${MAX_SERIES_PER_CHART} curves and ${MAX_POINTS_PER_CHART} points): ` +
    `${names}. Their values are in the table above.`
  );
}

/** Curves a chart's note names when it leaves some out. */
const LEFT_OUT_NAMED = 5;

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
  // Groups stay in the order they were made: a merge keeps the oldest. The map from name to
  // group keeps this near linear in the names, for records with thousands of panels.
  interface IGroup {
    readonly order: number;
    readonly names: string[];
    merged: boolean;
  }
  const groups: IGroup[] = [];
  const groupOf = new Map<string, IGroup>();
  for (const record of records) {
    for (const panel of record.panels) {
      const touched = [
        ...new Set(panel.map(name => groupOf.get(name)).filter(g => g !== undefined))
      ].sort((a, b) => a.order - b.order);
      let target = touched[0];
      if (target === undefined) {
        target = { order: groups.length, names: [], merged: false };
        groups.push(target);
      }
      for (const other of touched.slice(1)) {
        for (const name of other.names) {
          target.names.push(name);
          groupOf.set(name, target);
        }
        other.merged = true;
      }
      for (const name of panel) {
        if (groupOf.get(name) !== target) {
          target.names.push(name);
          groupOf.set(name, target);
        }
      }
    }
  }
  return groups.filter(g => !g.merged).map(g => g.names);
}

/**
 * Put curves on a common x axis for plotting: the sorted union of all x values
 * (steps by default), with null where a curve has no point (and for NaN or
 * infinite values, which cannot be drawn).
 *
 * The result has one cell per curve and distinct x value, so pass the curves of
 * a chart spec, which `boundSeries` keeps within `MAX_CELLS_PER_CHART`.
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
      const metrics: string[] = [];
      for (const { record, label } of runs) {
        for (const name of names) {
          const s = series(record, name, label(name));
          if (s) {
            members.push(s);
            metrics.push(name);
          }
        }
      }
      if (members.length > 0) {
        const { drawn, leftOut } = boundSeries(members);
        const drawnNames = new Set(metrics.slice(0, drawn.length));
        const xChoices = (['step', 'relative', 'wall'] as XAxis[]).filter(choice =>
          drawn.every(s => xValues(s, choice) !== null)
        );
        charts.push({
          title: names.filter(name => drawnNames.has(name)).join(', '),
          series: drawn,
          logAllowed: drawn.every(allPositive),
          defaultX: xChoices.includes(axis) ? axis : 'step',
          xChoices,
          leftOut: leftOut.map(s => s.label)
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
