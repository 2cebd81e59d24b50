/**
 * @module cli/decoders
 * The binary payload decoders of every capture source, for the journal reader. Sources that
 * write binary records register here (the collector itself imports no capture code).
 */
import type { PayloadDecoder } from '../collector/journal/api.js';

export async function payloadDecoders(): Promise<Map<number, PayloadDecoder>> {
  return new Map<number, PayloadDecoder>();
}
