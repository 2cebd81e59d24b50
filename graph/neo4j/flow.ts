/**
 * @module graph/neo4j/flow
 * The id of a socket flow between two hosts, so that both ends name it the same way.
 *
 * Within one host a socket flow is `sock:<host>:<ino>` (graph/model.ts): both ends share the
 * host's inode numbers. Across hosts no inode is shared; what both ends see is the flow's
 * address 4-tuple, mirrored (my local = your remote). So a flow whose peer is another host is
 *
 *     sock:net:<proto>:<lower endpoint>-<higher endpoint>     endpoint = <ip>:<port> ([v6]:port)
 *
 * with the two endpoints in canonical form and sorted, so each collector computes the same
 * id from its own view, and the store's MERGE on id joins the two halves when both have been
 * recorded: the sender's `sock wasGeneratedBy sender` and the receiver's `receiver used sock`.
 * Time comparisons never cross hosts (their monotonic clocks differ): the history rule resets
 * its bound at every entity, the socket included, so each host's edges are compared only with
 * its own.
 *
 * `net` is therefore reserved: no host may be called that. A flow node is described by each
 * end with its own host in `node.host`; a flow that only appears as an edge end (a placeholder)
 * has host ''.
 *
 * Known limit: a 4-tuple is reused once a connection is closed and its port recycled; two
 * connections with the same 4-tuple would share one flow node (nothing both ends observe
 * distinguishes them without packet data). Loopback flows stay per-host ids.
 */

export interface Endpoint {
  /** Dotted IPv4, or IPv6 in any textual form (IPv4-mapped IPv6 is reduced to IPv4). */
  ip: string;
  port: number;
}

/** Canonical text of an address: IPv4 as is, IPv6 compressed and lower-case, v4-mapped as IPv4. */
export function canonicalIp(ip: string): string {
  const bare = ip.replace(/^\[|\]$/g, '').toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped) return mapped[1]!;
  if (!bare.includes(':')) return bare;
  // The URL parser compresses IPv6 per RFC 5952 (it rejects what is not an address).
  const host = new URL(`http://[${bare}]/`).hostname;
  const v6 = host.slice(1, -1);
  const m2 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (m2) {
    const hi = Number.parseInt(m2[1]!, 16);
    const lo = Number.parseInt(m2[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return v6;
}

function endpointText(e: Endpoint): string {
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535) throw new RangeError(`bad port ${e.port}`);
  const ip = canonicalIp(e.ip);
  return ip.includes(':') ? `[${ip}]:${e.port}` : `${ip}:${e.port}`;
}

/** The flow id both ends of a cross-host socket compute (see the module comment). */
export function socketFlowId(proto: 'tcp' | 'udp', local: Endpoint, remote: Endpoint): string {
  const [a, b] = [endpointText(local), endpointText(remote)].sort();
  return `sock:net:${proto}:${a}-${b}`;
}
