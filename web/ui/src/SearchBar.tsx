/**
 * @module web/ui/SearchBar
 * Search first: type a path prefix (/home/ana/proj/), a glob (**\/*.o) or a name fragment,
 * pick a result with the mouse or the arrow keys and Enter; "/" focuses the box from anywhere.
 */
import { useEffect, useRef, useState } from 'react';
import { get, type GraphNode, type SearchPage } from './api.js';
import { fmtTs, pathOf } from './format.js';

export interface SearchBarProps {
  initial?: string;
  onPick(n: GraphNode, query: string): void;
}

/** Turn what the user typed into a search: absolute paths are prefixes, globs stay globs, fragments match anywhere. */
export function toSearch(text: string): { prefix?: string; glob?: string } | null {
  const t = text.trim();
  if (!t) return null;
  if (/[*?[\]{}]/.test(t)) return { glob: t };
  if (t.startsWith('/')) return { prefix: t };
  return { glob: `**/*${t.replace(/[\\*?[\]{}()!+@]/g, '\\$&')}*` };
}

const PAGE = 25;

export function SearchBar({ initial, onPick }: SearchBarProps) {
  const [text, setText] = useState(initial ?? '');
  const [page, setPage] = useState<SearchPage | null>(null);
  const [items, setItems] = useState<GraphNode[]>([]);
  const [active, setActive] = useState(0);
  const [open, setOpen] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      if (e.key === '/' && document.activeElement?.tagName !== 'INPUT') { e.preventDefault(); input.current?.focus(); }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);

  const run = (offset: number, signal?: AbortSignal): void => {
    const q = toSearch(text);
    if (!q) { setPage(null); setItems([]); return; }
    get<SearchPage>('search', { ...q, limit: PAGE, offset }, signal).then((p) => {
      setErr(null); setPage(p); setItems((old) => (offset === 0 ? p.items : [...old, ...p.items])); if (offset === 0) setActive(0);
    }, (e: Error) => { if (!signal?.aborted) setErr(e.message); });
  };
  useEffect(() => {
    const ac = new AbortController();
    const timer = setTimeout(() => run(0, ac.signal), 200);
    return () => { clearTimeout(timer); ac.abort(); };
  }, [text]); // eslint-disable-line react-hooks/exhaustive-deps

  const pick = (n: GraphNode): void => { setOpen(false); onPick(n, text); };
  return (
    <div className="search" role="search">
      <input
        ref={input} type="search" value={text} placeholder="Find a file: /path/prefix, **/*.o or a name  ( / )"
        aria-label="Search files by path" aria-controls="search-results" aria-expanded={open && items.length > 0}
        data-testid="search-input" spellCheck={false} autoComplete="off"
        onChange={(e) => { setText(e.target.value); setOpen(true); }}
        onFocus={() => setOpen(true)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown') { e.preventDefault(); setActive((a) => Math.min(items.length - 1, a + 1)); }
          else if (e.key === 'ArrowUp') { e.preventDefault(); setActive((a) => Math.max(0, a - 1)); }
          else if (e.key === 'Enter' && items[active]) { e.preventDefault(); pick(items[active]!); }
          else if (e.key === 'Escape') setOpen(false);
        }}
      />
      {open && (items.length > 0 || err || page) && (
        <div className="results" id="search-results" role="listbox" data-testid="search-results">
          {err && <div className="error">{err}</div>}
          {page && page.total === 0 && <div className="muted">No file ever had a matching name.</div>}
          {items.map((n, i) => (
            <div
              key={n.id} role="option" aria-selected={i === active} className={`result${i === active ? ' active' : ''}`}
              data-node-id={n.id} onMouseDown={(e) => { e.preventDefault(); pick(n); }} onMouseEnter={() => setActive(i)}
            >
              <span className="result-path">{pathOf(n)}</span>
              <span className="muted"> v{String(n.attrs.version ?? 0)} · {n.host} · {fmtTs(n.ts)}</span>
            </div>
          ))}
          {page && items.length < page.total && (
            <button type="button" className="more-results" onMouseDown={(e) => { e.preventDefault(); run(items.length); }}>
              Show more ({page.total - items.length} left)
            </button>
          )}
        </div>
      )}
    </div>
  );
}
