/**
 * @module cli/decoders
 * The binary payload decoders of every capture source, for the journal reader. The collector
 * imports no capture code, so the CLI hands it the decoders of the sources that write binary
 * records (today: eBPF's raw ring records, codec 1; provfs writes JSON).
 */
import type { PayloadDecoder } from '../collector/journal/api.js';

export async function payloadDecoders(): Promise<Map<number, PayloadDecoder>> {
  const { registerEbpfDecoder } = await import('../ebpf/decode.js');
  return registerEbpfDecoder(new Map<number, PayloadDecoder>());
}
