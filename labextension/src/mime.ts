/**
 * The mime extension: JupyterLab loads it from `jupyterlab.mimeExtension`.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { MIME_TYPE } from './record';
import { RunRecordRenderer } from './renderer';

const extension: IRenderMime.IExtension = {
  id: 'nbtrack:record-renderer',
  description: 'Renders nbtrack run records: charts, params, status and a link to MLflow.',
  rendererFactory: {
    // Safe: the renderer inserts record content as text only, so JupyterLab may
    // use it in untrusted notebooks (a shared file opened without running it).
    safe: true,
    mimeTypes: [MIME_TYPE],
    createRenderer: () => new RunRecordRenderer()
  },
  // Ahead of text/html (50), image/svg+xml and text/plain, the record's fallbacks.
  rank: 10,
  dataType: 'json'
};

export default extension;
