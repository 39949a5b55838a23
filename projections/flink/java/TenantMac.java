package hub.flink;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The tenant MAC of a Kafka data record, as {@code core/tenant_mac.py} computes it: the JVM twin
 * of {@code tenant_mac.verified_tenant} that the Flink pattern jobs run in their source tables'
 * rowtime column ({@link TenantOk}), where a Python function would stop the watermark being
 * pushed into the Kafka source (FLINK-22984). JDK only, so that tests/unit/test_tenant_mac_java.py
 * compiles and checks it against the Python reference with nothing but javac.
 *
 * <p>Message (core.tenant_mac.labelled_mac): LABEL, then length-prefixed fields (a signed 64-bit
 * big-endian length, -1 for none): the topic without the namespace prefix, the partition (unsigned
 * 32-bit) and timestamp (signed 64-bit) unprefixed, the record's key and value, then name and value
 * of each COVERED header the record carries, in COVERED order. HMAC-SHA256, under the namespace's
 * key ({@link #namespaceKey}; the hub's key itself below the namespace's legacy offsets only:
 * {@link Namespace}).
 */
public final class TenantMac {
    public static final String KEY_ENV = "HUB_FLINK_TENANT_KEY";
    public static final String TMAC_HEADER = "__hub.tmac";
    static final String[] COVERED = {"ce_tenant", "ce_type", "ce_time"};
    static final byte[] LABEL = "hub.kafka.tenant.v1\n".getBytes(StandardCharsets.US_ASCII);
    static final byte[] NAMESPACE_LABEL =
            "hub.kafka.namespace.v1\n".getBytes(StandardCharsets.US_ASCII);
    private static final java.util.regex.Pattern LEGACY =
            java.util.regex.Pattern.compile("[0-9]{1,10}:[0-9]{1,19}(,[0-9]{1,10}:[0-9]{1,19})*");
    static final int MIN_KEY = 32; // bytes (core.tenant_mac._key)

    private TenantMac() {}

    /**
     * The key of namespace {@code prefix} (core.tenant_mac.namespace_key): the hub's key itself for
     * the default namespace, else HMAC-SHA256(key, NAMESPACE_LABEL || prefix).
     */
    public static byte[] namespaceKey(byte[] key, String prefix) {
        if (prefix == null || prefix.isEmpty()) {
            return key.clone();
        }
        try {
            Mac m = Mac.getInstance("HmacSHA256");
            m.init(new SecretKeySpec(key, "HmacSHA256"));
            m.update(NAMESPACE_LABEL);
            return m.doFinal(prefix.getBytes(StandardCharsets.UTF_8));
        } catch (GeneralSecurityException e) { // every JDK has HmacSHA256
            throw new IllegalStateException("HmacSHA256 is not available in this JVM", e);
        }
    }

    /**
     * One topic's legacy offsets (core.tenant_mac.parse_legacy): partition to the offset below
     * which a record may carry a tenant MAC under the hub's unbound key; text that does not parse
     * holds none. A number too large for a long holds none either (Python's int would take it, but
     * no offset reaches it: both then take no record below it that the other refuses).
     */
    public static Map<Long, Long> parseLegacy(String text) {
        Map<Long, Long> out = new HashMap<>();
        if (text == null || !LEGACY.matcher(text).matches()) {
            return out;
        }
        try {
            for (String part : text.split(",")) {
                int at = part.indexOf(':');
                out.put(Long.parseLong(part.substring(0, at)), Long.parseLong(part.substring(at + 1)));
            }
        } catch (NumberFormatException e) {
            return new HashMap<>();
        }
        return out;
    }

    /**
     * The checks of one namespace (the JVM twin of the Python job's hub_tenant): under the
     * namespace's key, and under the hub's unbound key only for a record of a prefixed namespace
     * below its legacy offset (core.tenant_mac.legacy_key_of). Not thread-safe, like Verifier.
     */
    public static final class Namespace {
        private final String prefix;
        private final Verifier bound;
        private final Verifier unbound; // null for the default namespace
        private final Map<String, Map<Long, Long>> legacy = new HashMap<>(); // by its text

        public Namespace(byte[] hubKey, String prefix) {
            this.prefix = prefix == null ? "" : prefix;
            this.bound = new Verifier(namespaceKey(hubKey, this.prefix));
            this.unbound = this.prefix.isEmpty() ? null : new Verifier(hubKey);
        }

        /** Whether the record's tenant claim is this namespace's hub's (through the memo). */
        public boolean claimOk(
                Memo memo,
                String topic,
                long partition,
                long ts,
                byte[] recordKey,
                byte[] value,
                Map<String, byte[]> headers,
                Long offset,
                String legacyText) {
            if (memo.claimOk(bound, topic, partition, ts, recordKey, value, headers)) {
                return true;
            }
            if (unbound == null || offset == null || offset < 0) {
                return false;
            }
            String text = legacyText == null ? "" : legacyText;
            Long below = legacy.computeIfAbsent(text, TenantMac::parseLegacy).get(partition);
            return below != null
                    && offset < below
                    && memo.claimOk(unbound, topic, partition, ts, recordKey, value, headers);
        }
    }

    /** HMAC-SHA256 of one record (core.tenant_mac.tenant_mac over its covered headers). */
    public static byte[] mac(
            byte[] key,
            String topic,
            long partition,
            long ts,
            byte[] recordKey,
            byte[] value,
            Map<String, byte[]> headers) {
        return new Verifier(key).mac(topic, partition, ts, recordKey, value, headers);
    }

    /** Verifier.claimOk under {@code key} (one use; a caller checking many records keeps one). */
    public static boolean claimOk(
            byte[] key,
            String topic,
            long partition,
            long ts,
            byte[] recordKey,
            byte[] value,
            Map<String, byte[]> headers) {
        return new Verifier(key).claimOk(topic, partition, ts, recordKey, value, headers);
    }

    /**
     * The checks under one key, reusing one initialised Mac and decoder: a fresh Mac per record
     * (provider lookup, key schedule) cost about 26 us a record on the jobs' C1-only JVM, this
     * about a tenth of it. Not thread-safe: one per function instance (a Flink task is one thread).
     */
    public static final class Verifier {
        private final byte[] key;
        private final Mac hmac;
        private final ByteBuffer scratch = ByteBuffer.allocate(12);
        private final CharsetDecoder utf8 =
                StandardCharsets.UTF_8
                        .newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT);

        public Verifier(byte[] key) {
            this.key = key.clone();
            try {
                hmac = Mac.getInstance("HmacSHA256");
                hmac.init(new SecretKeySpec(key, "HmacSHA256"));
            } catch (GeneralSecurityException e) { // every JDK has HmacSHA256
                throw new IllegalStateException("HmacSHA256 is not available in this JVM", e);
            }
        }

        public byte[] mac(
                String topic,
                long partition,
                long ts,
                byte[] recordKey,
                byte[] value,
                Map<String, byte[]> headers) {
            hmac.update(LABEL);
            field(topic.getBytes(StandardCharsets.UTF_8));
            scratch.clear();
            hmac.update(scratch.putInt((int) partition).putLong(ts).array(), 0, 12);
            field(recordKey);
            field(value);
            if (headers != null) {
                for (String name : COVERED) {
                    if (headers.containsKey(name)) {
                        field(name.getBytes(StandardCharsets.UTF_8));
                        field(headers.get(name));
                    }
                }
            }
            return hmac.doFinal(); // also resets it for the next record
        }

        private void field(byte[] b) {
            scratch.clear();
            hmac.update(scratch.putLong(b == null ? -1 : b.length).array(), 0, 8);
            if (b != null) {
                hmac.update(b);
            }
        }

        /**
         * Whether the record's tenant claim is the hub's: its __hub.tmac header verifies and it
         * carries a UTF-8 ce_tenant (core.tenant_mac.verified_tenant is not None). A partition
         * outside 0..2^32-1 is no record's (Python's struct refuses it).
         */
        public boolean claimOk(
                String topic,
                long partition,
                long ts,
                byte[] recordKey,
                byte[] value,
                Map<String, byte[]> headers) {
            if (headers == null || partition < 0 || partition > 0xFFFFFFFFL) {
                return false;
            }
            byte[] got = headers.get(TMAC_HEADER);
            if (got == null || got.length == 0) {
                return false;
            }
            byte[] want = mac(topic, partition, ts, recordKey, value, headers);
            if (!MessageDigest.isEqual(got, want)) {
                return false;
            }
            byte[] tenant = headers.get("ce_tenant");
            if (tenant == null) {
                return false;
            }
            try {
                utf8.reset().decode(ByteBuffer.wrap(tenant));
                return true;
            } catch (CharacterCodingException e) { // the hub writes UTF-8 names only
                return false;
            }
        }
    }

    /**
     * The verdict of the last record checked on this thread, given again while every input of the
     * check (key, topic, partition, timestamp, record key, value, the covered headers and the tenant
     * MAC, each byte for byte, and which of them are present) is equal: the planner evaluates the
     * function two or three times per record (the source's watermark generator, the rowtime
     * column, the filter), consecutively on one thread when the operators are chained, and under
     * the jobs' C1-only JVM one HMAC costs about 17 us, a comparison a fraction of it. The inputs
     * are copied (Flink may reuse its buffers), so a verdict is never given for other bytes.
     */
    public static final class Memo {
        private static final ThreadLocal<Memo> THREAD = ThreadLocal.withInitial(Memo::new);
        private static final String[] READ = {COVERED[0], COVERED[1], COVERED[2], TMAC_HEADER};
        private byte[] key;
        private String topic;
        private long partition;
        private long ts;
        private byte[] recordKey;
        private byte[] value;
        private final byte[][] headers = new byte[READ.length][];
        private int present = -1; // bit i: READ[i] is in the map; -1: nothing remembered
        private boolean ok;

        /** This thread's memo. */
        public static Memo thread() {
            return THREAD.get();
        }

        /** {@code v.claimOk(...)}, or the remembered verdict of exactly these inputs. */
        public boolean claimOk(
                Verifier v,
                String topic,
                long partition,
                long ts,
                byte[] recordKey,
                byte[] value,
                Map<String, byte[]> headers) {
            if (headers == null) {
                return v.claimOk(topic, partition, ts, recordKey, value, null);
            }
            int bits = 0;
            for (int i = 0; i < READ.length; i++) {
                if (headers.containsKey(READ[i])) {
                    bits |= 1 << i;
                }
            }
            if (bits == present
                    && partition == this.partition
                    && ts == this.ts
                    && topic.equals(this.topic)
                    && Arrays.equals(v.key, key)
                    && Arrays.equals(recordKey, this.recordKey)
                    && Arrays.equals(value, this.value)
                    && sameHeaders(headers)) {
                return ok;
            }
            boolean verdict = v.claimOk(topic, partition, ts, recordKey, value, headers);
            present = -1; // while half remembered
            key = v.key;
            this.topic = topic;
            this.partition = partition;
            this.ts = ts;
            this.recordKey = recordKey == null ? null : recordKey.clone();
            this.value = value == null ? null : value.clone();
            for (int i = 0; i < READ.length; i++) {
                byte[] h = headers.get(READ[i]);
                this.headers[i] = h == null ? null : h.clone();
            }
            ok = verdict;
            present = bits;
            return verdict;
        }

        private boolean sameHeaders(Map<String, byte[]> headers) {
            for (int i = 0; i < READ.length; i++) {
                if (!Arrays.equals(headers.get(READ[i]), this.headers[i])) {
                    return false;
                }
            }
            return true;
        }
    }

    /**
     * The keys KEY_ENV holds (core.tenant_mac.parse_keys): one key in hex for every namespace, or a
     * JSON object of them by topic prefix; a value that is not 32+ bytes of hex is left out, and
     * text that does not parse holds none.
     */
    public static final class Keys {
        private final byte[] single;
        private final Map<String, byte[]> byPrefix;

        private Keys(byte[] single, Map<String, byte[]> byPrefix) {
            this.single = single;
            this.byPrefix = byPrefix;
        }

        public static Keys parse(String text) {
            if (text == null) {
                return new Keys(null, Map.of());
            }
            if (text.startsWith("{")) {
                Map<String, byte[]> keys = new HashMap<>();
                Map<String, Object> raw = Json.object(text);
                if (raw != null) {
                    for (Map.Entry<String, Object> e : raw.entrySet()) {
                        byte[] key = e.getValue() instanceof String ? hexKey((String) e.getValue()) : null;
                        if (key != null) {
                            keys.put(e.getKey(), key);
                        }
                    }
                }
                return new Keys(null, keys);
            }
            return new Keys(hexKey(text), Map.of());
        }

        /** The key of the namespace {@code prefix}, or null when the text holds none for it. */
        public byte[] of(String prefix) {
            return single != null ? single : byPrefix.get(prefix);
        }
    }

    /** Python's bytes.fromhex (ASCII whitespace before each pair), 32+ bytes; else null. */
    static byte[] hexKey(String text) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(text.length() / 2);
        int i = 0;
        int n = text.length();
        while (true) {
            while (i < n && isSpace(text.charAt(i))) {
                i++;
            }
            if (i >= n) {
                break;
            }
            if (i + 1 >= n) {
                return null;
            }
            int hi = hexDigit(text.charAt(i));
            int lo = hexDigit(text.charAt(i + 1));
            if (hi < 0 || lo < 0) {
                return null;
            }
            out.write(hi * 16 + lo);
            i += 2;
        }
        byte[] key = out.toByteArray();
        return key.length >= MIN_KEY ? key : null;
    }

    /**
     * An ASCII hex digit's value, else -1: Character.digit also takes non-ASCII digits, Python's
     * bytes.fromhex and JSON's u-escapes do not.
     */
    static int hexDigit(char c) {
        return c > 'f' ? -1 : Character.digit(c, 16);
    }

    private static boolean isSpace(char c) {
        return c == ' ' || (c >= '\t' && c <= '\r');
    }

    /**
     * A JSON reader for the one document KEY_ENV may hold, as lenient as Python's json.loads
     * (NaN, Infinity and -Infinity taken; control characters inside strings refused; a repeated
     * name keeps its last value): only the object's string members are kept, other values are
     * parsed and left out (Python's parse_keys skips them).
     */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        /** The object's string members (others mapped to a non-String), or null if not JSON. */
        static Map<String, Object> object(String text) {
            Json j = new Json(text);
            try {
                j.ws();
                Object v = j.value();
                j.ws();
                if (j.i != j.s.length() || !(v instanceof Map)) {
                    return null;
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> m = (Map<String, Object>) v;
                return m;
            } catch (IllegalArgumentException | IndexOutOfBoundsException e) {
                return null;
            }
        }

        private void ws() {
            while (i < s.length() && " \t\n\r".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
        }

        private IllegalArgumentException bad() {
            return new IllegalArgumentException("not JSON at " + i);
        }

        /** Whether the container just opened closes at once with {@code close} (then read). */
        private boolean empty(char close) {
            ws();
            if (s.charAt(i) == close) {
                i++;
                return true;
            }
            return false;
        }

        /** After a member or element: true at {@code close}, false at a comma (both read). */
        private boolean closed(char close) {
            ws();
            char d = s.charAt(i++);
            if (d == close) {
                return true;
            }
            if (d != ',') {
                throw bad();
            }
            return false;
        }

        private Object value() {
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new HashMap<>();
                if (empty('}')) {
                    return m;
                }
                while (true) {
                    ws();
                    if (s.charAt(i) != '"') {
                        throw bad();
                    }
                    String name = string();
                    ws();
                    if (s.charAt(i++) != ':') {
                        throw bad();
                    }
                    ws();
                    m.put(name, value());
                    if (closed('}')) {
                        return m;
                    }
                }
            }
            if (c == '[') {
                i++;
                if (empty(']')) {
                    return Boolean.FALSE;
                }
                while (true) {
                    ws();
                    value();
                    if (closed(']')) {
                        return Boolean.FALSE;
                    }
                }
            }
            if (c == '"') {
                return string();
            }
            for (String word : new String[] {"true", "false", "null", "NaN", "Infinity", "-Infinity"}) {
                if (s.startsWith(word, i)) {
                    i += word.length();
                    return Boolean.FALSE;
                }
            }
            return number();
        }

        private Object number() { // -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?
            int start = i;
            if (i < s.length() && s.charAt(i) == '-') {
                i++;
            }
            if (i < s.length() && s.charAt(i) == '0') {
                i++;
            } else if (digits() == 0) {
                throw bad();
            }
            if (i + 1 < s.length() && s.charAt(i) == '.' && isDigit(s.charAt(i + 1))) {
                i++;
                digits();
            }
            if (i + 1 < s.length() && (s.charAt(i) == 'e' || s.charAt(i) == 'E')) {
                int back = i;
                i++;
                if (s.charAt(i) == '+' || s.charAt(i) == '-') {
                    i++;
                }
                if (digits() == 0) {
                    i = back; // Python then fails on the trailing text
                }
            }
            if (i == start) {
                throw bad();
            }
            return Boolean.FALSE;
        }

        private int digits() {
            int start = i;
            while (i < s.length() && isDigit(s.charAt(i))) {
                i++;
            }
            return i - start;
        }

        private static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }

        private String string() {
            i++; // the opening quote
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c < 0x20) {
                    throw bad(); // Python's strict mode
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case '"', '\\', '/' -> b.append(e);
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'n' -> b.append('\n');
                    case 'r' -> b.append('\r');
                    case 't' -> b.append('\t');
                    case 'u' -> {
                        String hex = s.substring(i, i + 4);
                        for (char h : hex.toCharArray()) {
                            if (hexDigit(h) < 0) {
                                throw bad();
                            }
                        }
                        b.append((char) Integer.parseInt(hex, 16));
                        i += 4;
                    }
                    default -> throw bad();
                }
            }
        }
    }
}
