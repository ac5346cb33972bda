/**
 * The GGUF architectures (`general.architecture`) the learner can train: the table in
 * native/architecture.cpp, stated here so a trainer can refuse another model before loading
 * anything (a test checks the two agree).
 */
export const TRAINABLE_ARCHITECTURES: ReadonlyArray<string> = ["llama", "qwen2"];
