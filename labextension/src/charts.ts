/**
 * Which curves go on which chart. DOM-free.
 *
 * Curves of the same quantity share a chart (`train/loss` and `val/loss`,
 * `train_acc` and `val_acc`), unless their magnitudes differ so much that one
 * would be squashed flat against the axis: then they are split.
 */
import { Goal, IRunRecord } from './record';

/** Curves whose largest values differ by more than this factor get their own charts. */
export const SCALE_RATIO = 20;

const SPLIT_WORDS = 'train|training|val|valid|validation|test|eval|dev';
const PREFIX = new RegExp(`^(?:${SPLIT_WORDS})[_.\\-]`, 'i');
const SUFFIX = new RegExp(`[_.\\-](?:${SPLIT_WORDS})$`, 'i');

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

/** The quantity a metric key measures: `val/loss` and `train_loss` are both `loss`. */
export function metricFamily(key: string): string {
  const segments = key.split('/').filter(s => s.length > 0);
  const last = segments.length > 0 ? segments[segments.length - 1] : key;
  const stripped = last.replace(PREFIX, '').replace(SUFFIX, '');
  return (stripped.length > 0 ? stripped : last).toLowerCase();
}

/** Charts for one run: one per metric family (split by scale), in record order. */
export function runCharts(record: IRunRecord): IChartSpec[] {
  const series: Array<[string, ISeriesSpec]> = [];
  for (const [key, metric] of record.metrics) {
    if (metric.curve !== null && metric.curve.steps.length >= 2) {
      series.push([metricFamily(key), { label: key, goal: metric.goal, ...metric.curve }]);
    }
  }
  return chartsByFamily(series);
}

/**
 * Charts comparing runs: each metric family of every run on shared charts,
 * series labelled "<run label> · <metric>".
 */
export function overlayCharts(
  runs: ReadonlyArray<{ readonly label: string; readonly record: IRunRecord }>
): IChartSpec[] {
  const series: Array<[string, ISeriesSpec]> = [];
  for (const { label, record } of runs) {
    for (const [key, metric] of record.metrics) {
      if (metric.curve !== null && metric.curve.steps.length >= 2) {
        series.push([
          metricFamily(key),
          { label: `${label} · ${key}`, goal: metric.goal, ...metric.curve }
        ]);
      }
    }
  }
  return chartsByFamily(series);
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

function chartsByFamily(series: ReadonlyArray<[string, ISeriesSpec]>): IChartSpec[] {
  const families = new Map<string, ISeriesSpec[]>();
  for (const [family, s] of series) {
    const members = families.get(family);
    if (members) {
      members.push(s);
    } else {
      families.set(family, [s]);
    }
  }
  const charts: IChartSpec[] = [];
  // Saved notebooks sort JSON keys, so record order is alphabetical: order by meaning instead.
  const ordered = [...families].sort((a, b) => familyRank(a) - familyRank(b));
  for (const [family, members] of ordered) {
    const groups = splitByScale(members);
    for (const group of groups) {
      const title = groups.length === 1 ? family : group.map(s => s.label).join(', ');
      charts.push({ title, series: group, logAllowed: group.every(allPositive) });
    }
  }
  return charts;
}

/** Losses first, then other minimised metrics, then maximised ones, then the rest. */
function familyRank([family, members]: [string, readonly ISeriesSpec[]]): number {
  if (family.includes('loss')) {
    return 0;
  }
  if (members.some(s => s.goal === 'min')) {
    return 1;
  }
  return members.some(s => s.goal === 'max') ? 2 : 3;
}

function splitByScale(series: readonly ISeriesSpec[]): ISeriesSpec[][] {
  const sized = series.map(s => ({ s, size: magnitude(s) }));
  // Keep record order inside each chart; sort only to form the groups.
  const order = [...sized].sort((a, b) => a.size - b.size);
  const groups: Array<{ floor: number; members: Set<ISeriesSpec> }> = [];
  for (const { s, size } of order) {
    const current = groups[groups.length - 1];
    if (current && size <= Math.max(current.floor, Number.MIN_VALUE) * SCALE_RATIO) {
      current.members.add(s);
    } else {
      groups.push({ floor: size, members: new Set([s]) });
    }
  }
  return groups
    .map(g => series.filter(s => g.members.has(s)))
    .sort((a, b) => series.indexOf(a[0]) - series.indexOf(b[0]));
}

/** The largest finite absolute value of a curve (0 for a curve of zeros or no finite values). */
function magnitude(s: ISeriesSpec): number {
  let size = 0;
  for (const v of s.values) {
    if (Number.isFinite(v)) {
      size = Math.max(size, Math.abs(v));
    }
  }
  return size;
}

function allPositive(s: ISeriesSpec): boolean {
  return s.values.every(v => !Number.isFinite(v) || v > 0);
}
