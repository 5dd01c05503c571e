/**
 * Building DOM from record data. Every string goes in through `textContent`
 * or an attribute, never as HTML, because records are untrusted input.
 */

export interface IElementOptions {
  className?: string;
  text?: string;
  title?: string;
  attrs?: Readonly<Record<string, string>>;
}

/** A new element with optional class, text content, tooltip, attributes and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: IElementOptions = {},
  ...children: Array<Node | null>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (options.className) {
    node.className = options.className;
  }
  if (options.text !== undefined) {
    node.textContent = options.text;
  }
  if (options.title !== undefined) {
    node.title = options.title;
  }
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child) {
      node.appendChild(child);
    }
  }
  return node;
}

/**
 * A link that opens in a new tab without giving the page a handle on ours.
 * The caller passes only URLs already checked to be http(s).
 */
export function externalLink(href: string, text: string, className?: string): HTMLAnchorElement {
  const a = el('a', { className, text, title: href });
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  return a;
}

/** A table with a header row and text cells. */
export function textTable(
  className: string,
  header: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string>>
): HTMLTableElement {
  const head = el('tr', {}, ...header.map(h => el('th', { text: h })));
  const body = el(
    'tbody',
    {},
    ...rows.map(r => el('tr', {}, ...r.map(c => el('td', { text: c, title: c }))))
  );
  return el('table', { className }, el('thead', {}, head), body);
}

/** A colored badge for a run status. */
export function statusBadge(status: string): HTMLSpanElement {
  return el('span', {
    className: `nbtrack-status nbtrack-status-${status.toLowerCase()}`,
    text: status
  });
}
