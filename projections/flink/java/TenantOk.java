package hub.flink;

import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code hub_tenant_ok(headers, record_key, value, src_partition, src_ts, topic, prefix, src_offset,
 * legacy)}: whether a Kafka source row's tenant claim is the hub's (TenantMac.Namespace under the
 * key of the hub owning the namespace {@code prefix}, bound to it; the hub's key itself below the
 * namespace's legacy offsets only). The pattern jobs call it in the source table's rowtime column
 * (projections/flink/cep.py), so a record a broker producer forged carries no event time that
 * could move the watermark, and drop such rows before MATCH_RECOGNIZE. A JVM function because a
 * Python one there stops Flink pushing the watermark into the Kafka source (FLINK-22984): the
 * watermark would be per subtask instead of per partition.
 *
 * <p>The keys come from the environment (KEY_ENV), read by the task in open(), never from the job
 * graph: whoever reads the graph could otherwise forge tenant claims. A namespace without a key
 * fails the job (its rows would otherwise all be dropped, and no alert ever raised).
 */
public class TenantOk extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private transient TenantMac.Keys keys;
    private transient Map<String, TenantMac.Namespace> namespaces; // by prefix

    @Override
    public void open(FunctionContext context) {
        keys = TenantMac.Keys.parse(System.getenv(TenantMac.KEY_ENV));
        namespaces = new HashMap<>();
    }

    public boolean eval(
            @DataTypeHint("MAP<STRING, BYTES>") Map<String, byte[]> headers,
            byte[] recordKey,
            byte[] value,
            Integer partition,
            @DataTypeHint("TIMESTAMP_LTZ(3)") Instant ts,
            String topic,
            String prefix,
            Long offset,
            String legacy) {
        if (keys == null) { // a code-generated caller that did not open it
            open(null);
        }
        if (partition == null || ts == null || topic == null) {
            return false;
        }
        TenantMac.Namespace namespace = namespaces.get(prefix);
        if (namespace == null) {
            namespace = namespaces.computeIfAbsent(prefix, this::namespace);
        }
        return namespace.claimOk(
                TenantMac.Memo.thread(),
                topic,
                partition,
                ts.toEpochMilli(),
                recordKey,
                value,
                headers,
                offset,
                legacy);
    }

    private TenantMac.Namespace namespace(String prefix) {
        byte[] key = keys.of(prefix);
        if (key == null) {
            throw new IllegalStateException(
                    TenantMac.KEY_ENV
                            + " holds no tenant MAC key (32+ bytes of hex) for the namespace '"
                            + prefix
                            + "': the job reads a record only where the hub's tenant MAC verifies"
                            + " (the hub's launcher sets it); without it no record would count.");
        }
        return new TenantMac.Namespace(key, prefix);
    }
}
