export {
  type Bm25Document,
  type Bm25Params,
  Bm25Retriever,
  type Bm25RetrieverConfig,
  makeBm25Retriever,
  readCorpus,
} from "./bm25.js";
export { HttpRetriever, type HttpRetrieverConfig, RetrieveResponse } from "./http.js";
export { CorpusDocument, splitContents } from "./passage.js";
