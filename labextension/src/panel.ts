/**
 * The "Runs" side panel: the tracked runs of the current notebook, newest
 * first, plus the runs the tracking store holds for it that the notebook no
 * longer shows; select several to compare them.
 *
 * The notebook's own outputs are the source that always works (no kernel,
 * no server extension needed); the server extension only adds store runs and
 * the MLflow UI address, and its failures are shown as a note.
 */
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ICodeCellModel } from '@jupyterlab/cells';
import { Widget } from '@lumino/widgets';

import { fetchStoreRuns, IStoreRuns, mlflowUi } from './api';
import { compareView } from './compareView';
import { el, externalLink, statusBadge } from './dom';
import { formatDuration, formatNumber, formatTime } from './format';
import { runUrl, uiBase } from './links';
import { IRunRecord } from './record';
import { collectRuns, differingParams, headlineMetrics, ICellOutputs, keyParams } from './runs';

/** Output changes arrive in bursts while a cell runs; look at most this often. */
const REFRESH_DELAY_MS = 400;

/** One line of the list: a run from the notebook (with its cell) or from the store. */
interface IEntry {
  readonly key: string;
  readonly record: IRunRecord;
  readonly cellIndex: number | null;
}

export class RunsPanel extends Widget {
  constructor(options: RunsPanel.IOptions) {
    super();
    this._tracker = options.tracker;
    this._showNotebook = options.showNotebook;
    this.id = 'nbtrack-runs';
    this.addClass('nbtrack-runs-panel');
    this.title.caption = 'Tracked runs of this notebook';
    this._tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._onCurrentChanged();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._timer);
    this._disposeCharts();
    super.dispose();
  }

  /** Re-read the notebook's outputs and ask the server for store runs again. */
  refresh(): void {
    this._readNotebook();
    void this._loadFromServer();
  }

  private _onCurrentChanged(): void {
    const notebook = this._tracker.currentWidget;
    if (notebook === this._notebook) {
      return;
    }
    this._notebook?.model?.contentChanged.disconnect(this._scheduleRead, this);
    this._notebook = notebook;
    this._selected.clear();
    this._comparing = false;
    this._store = null;
    this._serverNote = null;
    this._uiUrl = null;
    this._runs = [];
    this._render();
    if (notebook) {
      void notebook.context.ready.then(() => {
        if (this._notebook !== notebook || this.isDisposed) {
          return;
        }
        notebook.model?.contentChanged.connect(this._scheduleRead, this);
        this.refresh();
      });
    }
  }

  private _scheduleRead(): void {
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => this._readNotebook(), REFRESH_DELAY_MS);
  }

  private _readNotebook(): void {
    const model = this._notebook?.model;
    if (!model) {
      return;
    }
    const cells: ICellOutputs[] = [];
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      if (cell.type !== 'code') {
        continue;
      }
      const outputs = (cell as ICodeCellModel).outputs;
      const bundles: Array<Record<string, unknown>> = [];
      for (let j = 0; j < outputs.length; j++) {
        bundles.push(outputs.get(j).data as Record<string, unknown>);
      }
      cells.push({ index: i, id: cell.id, bundles });
    }
    const before = this._runs.map(r => r.key).join();
    this._runs = collectRuns(cells).map(r => ({
      key: r.key,
      record: r.record,
      cellIndex: r.cellIndex
    }));
    this._render();
    // A new run in the notebook is also a new run in the store.
    if (before !== '' && before !== this._runs.map(r => r.key).join()) {
      void this._loadFromServer();
    }
  }

  private async _loadFromServer(): Promise<void> {
    const notebook = this._notebook;
    if (!notebook) {
      return;
    }
    const path = notebook.context.path;
    const [store, ui] = await Promise.allSettled([fetchStoreRuns(path), mlflowUi(path, false)]);
    if (this._notebook !== notebook || this.isDisposed) {
      return;
    }
    this._store = store.status === 'fulfilled' ? store.value : null;
    this._serverNote =
      store.status === 'rejected'
        ? `Runs from the tracking store are unavailable: ${errorText(store.reason)}`
        : null;
    this._uiUrl = ui.status === 'fulfilled' ? ui.value : (this._store?.uiUrl ?? null);
    this._render();
  }

  private async _startUi(button: HTMLButtonElement): Promise<void> {
    const notebook = this._notebook;
    if (!notebook) {
      return;
    }
    button.disabled = true;
    button.textContent = 'Starting MLflow UI…';
    try {
      this._uiUrl = await mlflowUi(notebook.context.path, true);
      this._serverNote = this._uiUrl ? null : 'The server started no MLflow UI.';
    } catch (err) {
      this._serverNote = `Could not start an MLflow UI: ${errorText(err)}`;
    }
    this._render();
  }

  /** Runs in the store but not in the notebook's outputs. */
  private _storeOnly(): IEntry[] {
    const shown = new Set(this._runs.map(r => r.record.run.id).filter(id => id !== null));
    return (this._store?.runs ?? [])
      .filter(r => r.run.id !== null && !shown.has(r.run.id))
      .map(r => ({ key: `store:${r.run.id}`, record: r, cellIndex: null }));
  }

  /**
   * Where the links to store runs and to MLflow's comparison point: the MLflow UI the server
   * extension reports for this notebook's store, and nothing else. A record's `ui_url` comes
   * from the notebook file, which anyone can write (and date as the newest run): it links that
   * record's own run in its view, never the user's other runs, whose ids would go to its site.
   */
  private _linkBase(): string | null {
    return uiBase(this._uiUrl);
  }

  private _render(): void {
    this._disposeCharts();
    const notebook = this._notebook;
    if (!notebook) {
      this.node.replaceChildren(
        el('div', { className: 'nbtrack-runs-empty', text: 'Open a notebook to see its runs.' })
      );
      return;
    }
    const storeOnly = this._storeOnly();
    const all = [...this._runs, ...storeOnly];
    for (const key of [...this._selected]) {
      if (!all.some(e => e.key === key)) {
        this._selected.delete(key);
      }
    }
    const varying = new Set(differingParams(all.map(e => e.record)).map(d => d.name));
    const parts: Array<Node | null> = [this._header(notebook), this._toolbar()];
    if (this._serverNote) {
      parts.push(el('div', { className: 'nbtrack-runs-note', text: this._serverNote }));
    }
    parts.push(
      el('h3', { className: 'nbtrack-runs-section', text: 'In this notebook' }),
      this._runs.length > 0
        ? this._list(this._runs, varying)
        : el('div', {
            className: 'nbtrack-runs-empty',
            text: 'No tracked runs in this notebook yet: run a cell that starts with %%track.'
          })
    );
    if (storeOnly.length > 0) {
      parts.push(
        el('h3', {
          className: 'nbtrack-runs-section',
          text: 'In the tracking store, not in this notebook'
        }),
        this._list(storeOnly, varying)
      );
    }
    const chosen = all.filter(e => this._selected.has(e.key));
    if (this._comparing && chosen.length >= 2) {
      const view = compareView(chosen.map(e => e.record), this._linkBase());
      this._disposeCharts = view.dispose;
      parts.push(view.node);
    }
    this.node.replaceChildren(...parts.filter((p): p is Node => p !== null));
  }

  private _header(notebook: NotebookPanel): HTMLElement {
    const refresh = el('button', {
      className: 'jp-Button jp-mod-minimal nbtrack-runs-refresh',
      text: '⟳',
      title: 'Read the notebook and the tracking store again'
    });
    refresh.addEventListener('click', () => this.refresh());
    let ui: HTMLElement;
    if (this._uiUrl) {
      ui = externalLink(this._uiUrl, 'MLflow UI ↗', 'nbtrack-mlflow-link');
    } else {
      const start = el('button', {
        className: 'jp-Button jp-mod-styled nbtrack-start-ui',
        text: 'Start MLflow UI',
        title: "Start an MLflow UI for this notebook's tracking store"
      });
      start.addEventListener('click', () => void this._startUi(start));
      ui = start;
    }
    return el(
      'div',
      { className: 'nbtrack-runs-head' },
      el('span', {
        className: 'nbtrack-runs-title',
        text: `Runs · ${notebook.title.label}`,
        title: notebook.context.path
      }),
      refresh,
      ui
    );
  }

  private _toolbar(): HTMLElement {
    const count = this._selected.size;
    const compare = el('button', {
      className: 'jp-Button jp-mod-styled jp-mod-accept nbtrack-compare-button',
      text: this._comparing ? `Comparing ${count}` : `Compare (${count})`,
      title: 'Select two or more runs with their check boxes'
    });
    compare.disabled = count < 2;
    compare.addEventListener('click', () => {
      this._comparing = true;
      this._render();
    });
    const clear = el('button', {
      className: 'jp-Button jp-mod-styled nbtrack-clear-button',
      text: 'Clear'
    });
    clear.disabled = count === 0;
    clear.addEventListener('click', () => {
      this._selected.clear();
      this._comparing = false;
      this._render();
    });
    return el('div', { className: 'nbtrack-runs-toolbar' }, compare, clear);
  }

  private _list(entries: readonly IEntry[], varying: ReadonlySet<string>): HTMLElement {
    return el('ul', { className: 'nbtrack-run-list' }, ...entries.map(e => this._item(e, varying)));
  }

  private _item(entry: IEntry, varying: ReadonlySet<string>): HTMLElement {
    const { record } = entry;
    const run = record.run;
    const box = el('input', {
      className: 'nbtrack-run-select',
      attrs: { type: 'checkbox', 'aria-label': `select ${run.name} for comparison` }
    });
    box.checked = this._selected.has(entry.key);
    box.addEventListener('click', event => event.stopPropagation());
    box.addEventListener('change', () => {
      if (box.checked) {
        this._selected.add(entry.key);
      } else {
        this._selected.delete(entry.key);
      }
      this._render();
    });
    const params = keyParams(record, varying)
      .map(([k, v]) => `${k}=${v}`)
      .join(' · ');
    const metrics = headlineMetrics(record)
      .map(m => `${m.name} ${formatNumber(m.value)}${m.kind === 'best' ? ' (best)' : ''}`)
      .join(' · ');
    const when = `${formatTime(run.startTime)} · ${formatDuration(run.durationS)}`;
    const body = el(
      'div',
      { className: 'nbtrack-run-body' },
      el(
        'div',
        { className: 'nbtrack-run-line' },
        statusBadge(run.status),
        el('span', { className: 'nbtrack-run-name', text: run.name, title: run.id ?? '' })
      ),
      el('div', { className: 'nbtrack-run-when', text: when }),
      params ? el('div', { className: 'nbtrack-run-params', text: params, title: params }) : null,
      metrics ? el('div', { className: 'nbtrack-run-metrics', text: metrics, title: metrics }) : null
    );
    const item = el('li', { className: 'nbtrack-run-item' }, box, body);
    if (entry.cellIndex !== null) {
      const index = entry.cellIndex;
      item.title = 'Show the cell of this run';
      item.classList.add('nbtrack-run-in-notebook');
      item.addEventListener('click', () => void this._scrollToCell(index));
    } else {
      const link = runUrl(this._linkBase(), run);
      if (link) {
        body.appendChild(externalLink(link, 'Open in MLflow ↗', 'nbtrack-mlflow-link'));
      }
    }
    return item;
  }

  private async _scrollToCell(index: number): Promise<void> {
    const notebook = this._notebook;
    if (!notebook) {
      return;
    }
    this._showNotebook(notebook);
    const content = notebook.content;
    const cell = content.widgets[index];
    if (!cell) {
      return;
    }
    content.activeCellIndex = index;
    await content.scrollToCell(cell, 'start');
  }

  private readonly _tracker: INotebookTracker;
  private readonly _showNotebook: (notebook: NotebookPanel) => void;
  private readonly _selected = new Set<string>();
  private _notebook: NotebookPanel | null = null;
  private _runs: IEntry[] = [];
  private _store: IStoreRuns | null = null;
  private _serverNote: string | null = null;
  private _uiUrl: string | null = null;
  private _comparing = false;
  private _timer = 0;
  private _disposeCharts: () => void = () => undefined;
}

export namespace RunsPanel {
  export interface IOptions {
    readonly tracker: INotebookTracker;
    /** Bring a notebook to the front (the panel lives in a side area). */
    readonly showNotebook: (notebook: NotebookPanel) => void;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
