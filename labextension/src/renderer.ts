/**
 * The output renderer for `application/vnd.nbtrack.run+json`.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { el } from './dom';
import { MIME_TYPE, parseRecord } from './record';
import { recordView } from './recordView';

export class RunRecordRenderer extends Widget implements IRenderMime.IRenderer {
  constructor() {
    super();
    this.addClass('nbtrack-renderer');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._disposeView();
    this.node.replaceChildren();
    const parsed = parseRecord(model.data[MIME_TYPE]);
    if (!parsed.ok) {
      this.node.appendChild(
        el('div', {
          className: 'nbtrack-record-invalid',
          text: `nbtrack cannot show this run record: ${parsed.error}`
        })
      );
      return Promise.resolve();
    }
    const view = recordView(parsed.record, parsed.warnings);
    this._disposeView = view.dispose;
    this.node.appendChild(view.node);
    return Promise.resolve();
  }

  dispose(): void {
    if (!this.isDisposed) {
      this._disposeView();
    }
    super.dispose();
  }

  private _disposeView: () => void = () => undefined;
}
