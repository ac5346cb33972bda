export {
  ALL_LORA_TARGETS,
  createGgmlLearner,
  GgmlLearner,
  type GgmlLearnerConfig,
  type GgmlLearnerShape,
  type LoraConfig,
  type LoraTarget,
  type OptimizerConfig,
  planMicroBatches,
} from "./learner.js";
export { backendsDirectory, loadAddon, type NativeInfo, type NativeLearnerHandle } from "./native.js";
