/**
 * @module web/ui/Live
 * The live feed: new nodes as capture records them, read from /api/stream (server-sent
 * events, read with fetch so the token header can go along).
 */
import { useEffect, useState } from 'react';
import { authHeaders, type GraphNode } from './api.js';
import { pathOf } from './format.js';

export interface LiveProps { onGo(id: string): void; onNew(count: number): void }

export function Live({ onGo, onNew }: LiveProps) {
  const [recent, setRecent] = useState<GraphNode[]>([]);
  const [state, setState] = useState<'connecting' | 'live' | 'down'>('connecting');
  const [open, setOpen] = useState(false);
  useEffect(() => {
    const ac = new AbortController();
    let cursor: string | null = null;
    const connect = async (): Promise<void> => {
      while (!ac.signal.aborted) {
        try {
          const res = await fetch(`/api/stream${cursor === null ? '' : `?cursor=${cursor}`}`, { headers: authHeaders(), signal: ac.signal });
          if (!res.ok || !res.body) throw new Error(String(res.status));
          setState('live');
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let cut: number;
            while ((cut = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
              const ev = /^event: (.+)$/m.exec(block)?.[1];
              const data = /^data: (.+)$/m.exec(block)?.[1];
              if (!data) continue;
              const msg = JSON.parse(data) as { cursor: number; nodes?: GraphNode[] };
              cursor = String(msg.cursor);
              if (ev === 'nodes' && msg.nodes?.length) {
                setRecent((r) => [...msg.nodes!.slice(-50).reverse(), ...r].slice(0, 50));
                onNew(msg.nodes.length);
              }
            }
          }
        } catch { if (ac.signal.aborted) return; }
        setState('down');
        await new Promise((r) => setTimeout(r, 2000));
      }
    };
    void connect();
    return () => ac.abort();
  }, []); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <div className="live">
      <button type="button" className={`live-state ${state}`} onClick={() => setOpen(!open)} aria-expanded={open} data-testid="live">
        ● {state === 'live' ? `live${recent.length ? ` · ${recent.length} new` : ''}` : state}
      </button>
      {open && (
        <ul className="live-list" aria-label="Recently recorded">
          {recent.length === 0 && <li className="muted">Nothing new since this page opened.</li>}
          {recent.map((n) => <li key={n.id}><button type="button" className="link" onClick={() => onGo(n.id)}>{n.kind === 'file' ? pathOf(n) : n.label}</button></li>)}
        </ul>
      )}
    </div>
  );
}
