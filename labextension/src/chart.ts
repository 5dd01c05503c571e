/**
 * An interactive line chart of metric curves, drawn with uPlot (~50 KB, canvas).
 *
 * uPlot gives drag-to-zoom (double-click resets), a legend with the values
 * under the cursor (at full precision), and click-to-hide on legend entries;
 * this adds a title, an x-axis choice (step, time since start, clock time;
 * the record's choice first), a log-scale switch and resizing with the
 * container. Axis ticks have 2-4 significant digits. Labels reach the page as
 * text only: uPlot sets legend labels through textContent and draws axes on a
 * canvas.
 */
import uPlot from 'uplot';

import { alignSeries, IChartSpec, leftOutNote, X_TITLES } from './charts';
import { el } from './dom';
import { formatFull, formatNumber, timeUnit } from './format';
import { XAxis } from './record';

/** Distinct line colors that read on light and dark themes. */
const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'
];

const HEIGHT = 220;

export class MetricChart {
  /** The chart's root element; put it anywhere in the page. */
  readonly node: HTMLDivElement;

  constructor(spec: IChartSpec) {
    this._spec = spec;
    this._x = spec.defaultX;
    this._plotHost = el('div', { className: 'nbtrack-chart-plot' });
    const xPicker = el('select', {
      className: 'nbtrack-chart-x',
      title: 'x axis: the step, the time since the run started, or the clock time'
    });
    for (const choice of spec.xChoices) {
      const option = el('option', { text: X_TITLES[choice] });
      option.value = choice;
      option.selected = choice === this._x;
      xPicker.appendChild(option);
    }
    xPicker.disabled = spec.xChoices.length < 2;
    xPicker.addEventListener('change', () => {
      this._x = xPicker.value as XAxis;
      this._rebuild();
    });
    const logToggle = el('input', { attrs: { type: 'checkbox' } });
    logToggle.disabled = !spec.logAllowed;
    logToggle.addEventListener('change', () => {
      this._log = logToggle.checked;
      this._rebuild();
    });
    const logLabel = el(
      'label',
      {
        className: 'nbtrack-chart-log',
        title: spec.logAllowed
          ? 'logarithmic y axis'
          : 'a log scale needs every value to be positive'
      },
      logToggle,
      document.createTextNode(' log')
    );
    const head = el(
      'div',
      { className: 'nbtrack-chart-head' },
      el('span', { className: 'nbtrack-chart-title', text: spec.title, title: spec.title }),
      xPicker,
      logLabel
    );
    const note = leftOutNote(spec);
    this.node = el(
      'div',
      { className: 'nbtrack-chart' },
      head,
      this._plotHost,
      note === null ? null : el('div', { className: 'nbtrack-chart-left-out', text: note })
    );
    this._observer = new ResizeObserver(() => this._resize());
    this._observer.observe(this._plotHost);
  }

  /** Free the canvas and stop watching the size. */
  dispose(): void {
    this._observer.disconnect();
    this._plot?.destroy();
    this._plot = null;
  }

  private _resize(): void {
    const width = Math.floor(this._plotHost.clientWidth);
    if (width <= 0 || width === this._width) {
      return;
    }
    this._width = width;
    if (this._plot) {
      this._plot.setSize({ width, height: HEIGHT });
    } else {
      this._rebuild();
    }
  }

  /** uPlot cannot change a scale's distribution in place, so a switch rebuilds the chart. */
  private _rebuild(): void {
    if (this._width <= 0) {
      return;
    }
    this._plot?.destroy();
    this.node.dataset.scale = this._log ? 'log' : 'linear';
    this.node.dataset.x = this._x;
    const { xs, ys } = alignSeries(this._spec.series, this._x);
    const x = xAxisFormat(this._x, xs);
    const style = getComputedStyle(this.node);
    const fg = style.getPropertyValue('--jp-ui-font-color1').trim() || '#444';
    const grid = style.getPropertyValue('--jp-border-color2').trim() || '#ddd';
    const axis = {
      stroke: fg,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 }
    };
    const sparse = xs.length < 40;
    const options: uPlot.Options = {
      width: this._width,
      height: HEIGHT,
      cursor: { drag: { x: true, y: false, setScale: true } },
      legend: { live: true },
      scales: { x: { time: this._x === 'wall' }, y: this._log ? { distr: 3 } : { auto: true } },
      axes: [
        { ...axis, label: x.label, ...(x.ticks ? { values: x.ticks } : {}) },
        {
          ...axis,
          size: 56,
          // uPlot passes null for log-scale ticks it leaves unlabelled.
          values: (_u: uPlot, splits: Array<number | null>) =>
            splits.map(v => (v === null ? '' : formatNumber(v)))
        }
      ],
      series: [
        { label: x.label, ...(x.hover ? { value: x.hover } : {}) },
        ...this._spec.series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
          points: { show: sparse },
          // The legend shows the value under the cursor in full; the ticks round.
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatFull(v))
        }))
      ]
    };
    this._plot = new uPlot(options, [xs, ...ys] as uPlot.AlignedData, this._plotHost);
  }

  private readonly _spec: IChartSpec;
  private _x: XAxis;
  private readonly _plotHost: HTMLDivElement;
  private readonly _observer: ResizeObserver;
  private _plot: uPlot | null = null;
  private _width = 0;
  private _log = false;
}

/**
 * How an x axis is labelled: its title, and tick and hover formatters (none:
 * uPlot's own, as for clock time).
 */
function xAxisFormat(
  axis: XAxis,
  xs: readonly number[]
): {
  label: string;
  ticks?: (u: uPlot, splits: number[]) => string[];
  hover?: (u: uPlot, v: number | null) => string;
} {
  if (axis === 'wall') {
    return { label: X_TITLES.wall };
  }
  if (axis === 'step') {
    return {
      label: X_TITLES.step,
      ticks: (_u, splits) => splits.map(v => formatNumber(v)),
      hover: (_u, v) => (v === null ? '—' : formatFull(v))
    };
  }
  const [seconds, unit] = timeUnit(xs.length > 0 ? xs[xs.length - 1] - Math.min(0, xs[0]) : 0);
  return {
    label: `${X_TITLES.relative} (${unit})`,
    ticks: (_u, splits) => splits.map(v => formatNumber(v / seconds)),
    hover: (_u, v) => (v === null ? '—' : `${formatFull(v)} s`)
  };
}

/** A grid of charts; returns the element and a function that frees them. */
export function chartGrid(specs: readonly IChartSpec[]): {
  node: HTMLDivElement;
  dispose: () => void;
} {
  const charts = specs.map(spec => new MetricChart(spec));
  const node = el('div', { className: 'nbtrack-charts' }, ...charts.map(c => c.node));
  return { node, dispose: () => charts.forEach(c => c.dispose()) };
}

/** Charts drawn at first, and how many more each click opens. */
export const CHARTS_PER_BATCH = 12;

/**
 * The first charts, then a button naming how many more there are that draws
 * the next batch: thousands of canvases at once would freeze the page.
 */
export function chartBatches(specs: readonly IChartSpec[]): {
  node: HTMLDivElement;
  dispose: () => void;
} {
  const disposers: Array<() => void> = [];
  const node = el('div', { className: 'nbtrack-chart-batches' });
  const more = el('button', { className: 'nbtrack-more nbtrack-more-charts' });
  let shown = 0;
  const showNext = (): void => {
    const grid = chartGrid(specs.slice(shown, shown + CHARTS_PER_BATCH));
    disposers.push(grid.dispose);
    node.insertBefore(grid.node, more);
    shown = Math.min(specs.length, shown + CHARTS_PER_BATCH);
    const rest = specs.length - shown;
    more.hidden = rest === 0;
    more.textContent = `Show ${Math.min(rest, CHARTS_PER_BATCH)} more charts (${rest} not drawn)`;
    more.title = specs
      .slice(shown, shown + 50)
      .map(s => s.title)
      .join('\n');
  };
  more.addEventListener('click', showNext);
  node.appendChild(more);
  showNext();
  return { node, dispose: () => disposers.forEach(dispose => dispose()) };
}
