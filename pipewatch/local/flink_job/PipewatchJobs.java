// Streaming jobs for pipewatch's demo and tests, run on a local Flink cluster.
//   steady  - a sequence source, a map that can only do ~SLOW_RATE records/s (so the source is
//             backpressured), event-time watermarks, checkpoints every 2 s, a discarding sink.
//   failing - the same source and a map that divides by zero every 500 records: it fails, restarts
//             (the cluster's fixed-delay restart strategy) and fails again, with a real exception.
import java.time.Duration;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.legacy.DiscardingSink;

public class PipewatchJobs {
    public static void main(String[] args) throws Exception {
        String kind = args.length > 0 ? args[0] : "steady";
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.enableCheckpointing(2000);
        env.disableOperatorChaining(); // one vertex per operator: backpressure shows between them
        if (kind.equals("failing")) {
            env.fromSequence(0, Long.MAX_VALUE).name("orders source")
                .map(new Divide()).name("price per unit")
                .addSink(new DiscardingSink<>()).name("discard");
            env.execute("pipewatch failing job");
        } else {
            env.fromSequence(0, Long.MAX_VALUE).name("orders source")
                .assignTimestampsAndWatermarks(WatermarkStrategy.<Long>forBoundedOutOfOrderness(Duration.ofSeconds(1))
                    .withTimestampAssigner((value, previous) -> System.currentTimeMillis())).name("event time")
                .map(new Slow()).name("enrich (slow)")
                .addSink(new DiscardingSink<>()).name("discard");
            env.execute("pipewatch steady job");
        }
    }

    /** At most about 500 records a second: slower than the source, which is then backpressured. */
    public static class Slow implements MapFunction<Long, Long> {
        @Override
        public Long map(Long value) throws Exception {
            Thread.sleep(2);
            return value * 2;
        }
    }

    /** Divides by zero on every 500th record of an attempt. */
    public static class Divide implements MapFunction<Long, Long> {
        private long seen = 0;

        @Override
        public Long map(Long value) throws Exception {
            Thread.sleep(1);
            seen++;
            long units = seen % 500 == 0 ? 0 : 1;
            return value / units;
        }
    }
}
