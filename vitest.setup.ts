// Property tests (fast-check) use one fixed seed so CI runs are reproducible; set FC_SEED to
// explore other seeds locally (a failure prints the seed and path to replay it).
import fc from "fast-check";

fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261125) });
