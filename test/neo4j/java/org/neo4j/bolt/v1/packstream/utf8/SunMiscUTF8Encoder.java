/*
 * Test-only replacement for Neo4j 3.1.1's Bolt UTF-8 encoder (prov's Neo4j test server).
 *
 * Why: the original reads String's internal char[] through method handles. Since Java 9
 * Strings are byte[]-backed (compact strings), so on JDK 17 that path fails with an error its
 * fallback does not catch, and every Bolt connection closes. Placed first on the classpath,
 * this class shadows the original and encodes with the JDK's own UTF-8 encoder.
 */
package org.neo4j.bolt.v1.packstream.utf8;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

public class SunMiscUTF8Encoder implements UTF8Encoder {
    public SunMiscUTF8Encoder() {}

    @Override
    public ByteBuffer encode(String input) {
        return ByteBuffer.wrap(input.getBytes(StandardCharsets.UTF_8));
    }
}
