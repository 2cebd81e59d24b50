/**
 * @module web/ui/DetailPanel
 * Everything known about the selected node. A process: argv, cwd, user, pid, start, end, exit
 * code, parent, inputs and outputs. A file: its path history, its versions and, per version,
 * who wrote it and who read it. Every name is rendered as text (React escapes it).
 */
import { useEffect, useState, type ReactNode } from 'react';
import { get, type GraphNode, type NodeAnswer } from './api.js';
import { fmtDuration, fmtTs, pathOf, str } from './format.js';

export interface DetailPanelProps {
  id: string;
  onGo(id: string): void;
  onView(view: 'ancestors' | 'descendants' | 'tree', id: string): void;
  /** Show the path between the view's focus and this node (absent when this node is the focus). */
  onPath?: () => void;
  onClose(): void;
}

function NodeLink({ n, onGo }: { n: GraphNode; onGo(id: string): void }) {
  return <button type="button" className="link" onClick={() => onGo(n.id)} title={n.id}>{n.kind === 'file' ? pathOf(n) : n.label}</button>;
}

function Row({ k, children }: { k: string; children: ReactNode }) {
  return <><dt>{k}</dt><dd>{children}</dd></>;
}

function ProcessFacts({ d, onGo }: { d: NodeAnswer; onGo(id: string): void }) {
  const a = d.node.attrs;
  const argv = Array.isArray(a.argv) ? (a.argv as unknown[]).map(String) : [];
  const user = d.out.find((x) => x.edge.kind === 'wasAssociatedWith')?.node;
  const parent = d.out.find((x) => x.edge.kind === 'wasInformedBy')?.node;
  const start = typeof a.start === 'number' ? a.start : d.node.ts;
  const end = typeof a.end === 'number' ? a.end : undefined;
  const inputs = d.out.filter((x) => x.edge.kind === 'used');
  const outputs = d.in.filter((x) => x.edge.kind === 'wasGeneratedBy');
  return (
    <>
      <dl className="facts">
        <Row k="argv"><ol className="argv" data-testid="argv">{argv.map((s, i) => <li key={i}><code>{s}</code></li>)}</ol></Row>
        <Row k="exe"><code>{str(a.exe)}</code></Row>
        <Row k="cwd"><code>{str(a.cwd)}</code></Row>
        <Row k="user">{user ? (user.label.includes('uid') ? user.label : `${user.label} (uid ${str(a.uid)})`) : `uid ${str(a.uid)}`}{a.gid !== undefined ? `, gid ${str(a.gid)}` : ''}</Row>
        <Row k="pid">{str(a.pid)}{a.ppid !== undefined ? ` (parent pid ${str(a.ppid)})` : ''}</Row>
        <Row k="start">{fmtTs(start)}</Row>
        <Row k="end">{end !== undefined ? `${fmtTs(end)} (ran ${fmtDuration(end - start)})` : 'still running or end not recorded'}</Row>
        <Row k="exit code"><span data-testid="exit-code">{str(a.exitCode)}</span></Row>
        <Row k="host">{d.node.host}</Row>
        {parent && <Row k="started by"><NodeLink n={parent} onGo={onGo} /></Row>}
      </dl>
      <h4>Read ({inputs.length})</h4>
      <ul className="uses">{inputs.slice(0, 200).map((x, i) => <li key={i}><NodeLink n={x.node} onGo={onGo} /> <span className="muted">{fmtTs(x.edge.ts)}</span></li>)}</ul>
      <h4>Wrote ({outputs.length})</h4>
      <ul className="uses">{outputs.slice(0, 200).map((x, i) => <li key={i}><NodeLink n={x.node} onGo={onGo} /> <span className="muted">{fmtTs(x.edge.ts)}</span></li>)}</ul>
    </>
  );
}

function FileFacts({ d, onGo }: { d: NodeAnswer; onGo(id: string): void }) {
  const a = d.node.attrs;
  return (
    <>
      <dl className="facts">
        <Row k="path"><code data-testid="file-path">{pathOf(d.node)}</code></Row>
        <Row k="version">{str(a.version)} of {d.versions.length || 1}</Row>
        <Row k="inode">{str(a.dev)}:{str(a.ino)}</Row>
        {a.size !== undefined && <Row k="size">{str(a.size)} bytes</Row>}
        {a.deleted === true && <Row k="deleted">yes</Row>}
        <Row k="host">{d.node.host}</Row>
      </dl>
      <h4>Path history</h4>
      <table className="names" data-testid="path-history">
        <thead><tr><th>name</th><th>from</th><th>until</th></tr></thead>
        <tbody>{d.names.map((r, i) => <tr key={i}><td><code>{r.path}</code></td><td>{fmtTs(r.since)}</td><td>{r.until === undefined ? 'now' : fmtTs(r.until)}</td></tr>)}</tbody>
      </table>
      <h4>Versions</h4>
      <table className="versions" data-testid="versions">
        <thead><tr><th>v</th><th>began</th><th>written by</th><th>read by</th></tr></thead>
        <tbody>{d.uses.map((u) => (
          <tr key={u.node.id} className={u.node.id === d.node.id ? 'current' : ''}>
            <td><button type="button" className="link" onClick={() => onGo(u.node.id)}>{str(u.node.attrs.version)}</button></td>
            <td>{fmtTs(u.node.ts)}</td>
            <td>{u.writers.length ? u.writers.map((w, i) => <div key={i}><NodeLink n={w.node} onGo={onGo} /></div>) : <span className="muted">first seen</span>}</td>
            <td>{u.readers.length ? u.readers.slice(0, 20).map((r, i) => <div key={i}><NodeLink n={r.node} onGo={onGo} /></div>) : <span className="muted">none</span>}{u.readers.length > 20 ? <div className="muted">and {u.readers.length - 20} more</div> : null}</td>
          </tr>
        ))}</tbody>
      </table>
    </>
  );
}

export function DetailPanel({ id, onGo, onView, onPath, onClose }: DetailPanelProps) {
  const [d, setD] = useState<NodeAnswer | null>(null);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    const ac = new AbortController();
    setD(null); setErr(null);
    get<NodeAnswer>('node', { id }, ac.signal).then(setD, (e: Error) => { if (!ac.signal.aborted) setErr(e.message); });
    return () => ac.abort();
  }, [id]);
  return (
    <aside className="panel" data-testid="detail-panel" aria-label="Node details">
      <header>
        <h3>{d ? (d.node.kind === 'file' ? pathOf(d.node) : d.node.label) : id}</h3>
        <button type="button" className="close" onClick={onClose} aria-label="Close details">×</button>
      </header>
      <div className="panel-id"><code>{id}</code></div>
      <div className="panel-actions">
        <button type="button" onClick={() => onView('ancestors', id)}>Where it came from</button>
        <button type="button" onClick={() => onView('descendants', id)}>What came out of it</button>
        {id.startsWith('proc:') && <button type="button" onClick={() => onView('tree', id)}>Process tree</button>}
        {onPath && <button type="button" onClick={onPath} data-testid="path-button">Path from the focus</button>}
      </div>
      {err && <p className="error">{err}</p>}
      {!d && !err && <p className="muted">Loading…</p>}
      {d && d.node.kind === 'process' && <ProcessFacts d={d} onGo={onGo} />}
      {d && d.node.kind === 'file' && <FileFacts d={d} onGo={onGo} />}
      {d && d.node.kind !== 'process' && d.node.kind !== 'file' && (
        <dl className="facts">{Object.entries(d.node.attrs).map(([k, v]) => <Row key={k} k={k}>{str(v)}</Row>)}</dl>
      )}
    </aside>
  );
}
