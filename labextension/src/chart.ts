/**
 * An interactive line chart of metric curves, drawn with uPlot (~50 KB, canvas).
 *
 * uPlot gives drag-to-zoom (double-click resets), a legend with the values
 * under the cursor, and click-to-hide on legend entries; this adds a title, a
 * log-scale switch and resizing with the container. Labels reach the page as
 * text only: uPlot sets legend labels through textContent and draws axes on a
 * canvas.
 */
import uPlot from 'uplot';

import { alignSeries, IChartSpec } from './charts';
import { el } from './dom';
import { formatNumber } from './format';

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
    this._plotHost = el('div', { className: 'nbtrack-chart-plot' });
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
      logLabel
    );
    this.node = el('div', { className: 'nbtrack-chart' }, head, this._plotHost);
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
    const { xs, ys } = alignSeries(this._spec.series);
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
      scales: { x: { time: false }, y: this._log ? { distr: 3 } : { auto: true } },
      axes: [
        { ...axis, label: 'step' },
        {
          ...axis,
          size: 56,
          // uPlot passes null for log-scale ticks it leaves unlabelled.
          values: (_u: uPlot, splits: Array<number | null>) =>
            splits.map(v => (v === null ? '' : formatNumber(v)))
        }
      ],
      series: [
        { label: 'step' },
        ...this._spec.series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
          points: { show: sparse },
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatNumber(v))
        }))
      ]
    };
    this._plot = new uPlot(options, [xs, ...ys] as uPlot.AlignedData, this._plotHost);
  }

  private readonly _spec: IChartSpec;
  private readonly _plotHost: HTMLDivElement;
  private readonly _observer: ResizeObserver;
  private _plot: uPlot | null = null;
  private _width = 0;
  private _log = false;
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
