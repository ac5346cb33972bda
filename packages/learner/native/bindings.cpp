// Node-API surface of the learner: a NativeLearner class whose compute calls run on libuv's
// thread pool and return Promises, plus the ABI check and a model type converter.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "abi.h"
#include "checkpoint.h"
#include "compute.h"
#include "convert.h"
#include "graph.h"
#include "model.h"
#include "optimizer.h"

namespace wr1 {
namespace {

// Runs one learner operation off the main thread and settles a promise; the TypeScript side
// serialises operations, so a Model is never used by two threads at once.
class Job : public Napi::AsyncWorker {
public:
  using Work = std::function<void(Job &)>;
  using Done = std::function<Napi::Value(Napi::Env, Job &)>;
  Job(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env, "workflow-r1-learner"), deferred(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {}
  void Execute() override {
    try {
      work_(*this);
    } catch (const std::exception &e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    deferred.Resolve(done_(Env(), *this));
  }
  void OnError(const Napi::Error &e) override { deferred.Reject(e.Value()); }
  Napi::Promise::Deferred deferred;
  std::vector<float> floats;
  std::vector<uint8_t> bytes;
  double number = 0;

private:
  Work work_;
  Done done_;
};

Napi::Value floatsOf(Napi::Env env, Job &job) {
  auto arr = Napi::Float32Array::New(env, job.floats.size());
  std::memcpy(arr.Data(), job.floats.data(), job.floats.size() * sizeof(float));
  return arr;
}

Napi::Value bytesOf(Napi::Env env, Job &job) {
  return Napi::Buffer<uint8_t>::Copy(env, job.bytes.data(), job.bytes.size());
}

Napi::Value numberOf(Napi::Env env, Job &job) { return Napi::Number::New(env, job.number); }

Napi::Value undefinedOf(Napi::Env env, Job &) { return env.Undefined(); }

template <typename F> Napi::Value guard(Napi::Env env, F f) {
  try {
    return f();
  } catch (const std::exception &e) {
    Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

Napi::Value queue(Napi::Env env, Job::Work work, Job::Done done) {
  auto *job = new Job(env, std::move(work), std::move(done));
  auto promise = job->deferred.Promise();
  job->Queue();
  return promise;
}

ModelOptions optionsOf(const Napi::Object &o) {
  ModelOptions m;
  m.threads = o.Get("threads").As<Napi::Number>().Int32Value();
  m.gpu = o.Get("gpu").As<Napi::Boolean>();
  m.loraRank = o.Get("loraRank").As<Napi::Number>().Int32Value();
  m.loraAlpha = o.Get("loraAlpha").As<Napi::Number>().FloatValue();
  auto targets = o.Get("loraTargets").As<Napi::Array>();
  for (uint32_t i = 0; i < targets.Length(); i++) m.loraTargets.push_back(targets.Get(i).As<Napi::String>());
  m.seed = o.Get("seed").As<Napi::Number>().Uint32Value();
  const std::string precision = o.Get("precision").As<Napi::String>();
  if (precision == "f16") m.precision = Precision::F16;
  else if (precision != "f32") throw Error("precision must be \"f32\" or \"f16\", got " + precision);
  m.graphCacheSize = o.Get("graphCacheSize").As<Napi::Number>().Uint32Value();
  m.transposedBase = o.Get("transposedBase").ToBoolean();
  m.frozen = o.Get("frozen").ToBoolean();
  return m;
}

// Token blocks [B*L] with their packing segments, validated against L and B.
struct Batch {
  std::vector<int32_t> tokens, segments;
  int64_t length, rows;
};

Batch batchOf(const Napi::CallbackInfo &info) {
  auto tokens = info[0].As<Napi::Int32Array>();
  auto segments = info[1].As<Napi::Int32Array>();
  Batch b;
  b.length = info[2].As<Napi::Number>().Int64Value();
  b.rows = info[3].As<Napi::Number>().Int64Value();
  if ((int64_t)tokens.ElementLength() != b.length * b.rows || segments.ElementLength() != tokens.ElementLength())
    throw Error("tokens / segments length is not length × rows");
  b.tokens.assign(tokens.Data(), tokens.Data() + tokens.ElementLength());
  b.segments.assign(segments.Data(), segments.Data() + segments.ElementLength());
  return b;
}

class Native : public Napi::ObjectWrap<Native> {
public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(
        env, "NativeLearner",
        {InstanceMethod("info", &Native::Info), InstanceMethod("forward", &Native::Forward),
         InstanceMethod("backward", &Native::Backward), InstanceMethod("gradNorm", &Native::GradNorm),
         InstanceMethod("step", &Native::Step), InstanceMethod("zeroGrad", &Native::ZeroGrad),
         InstanceMethod("save", &Native::Save), InstanceMethod("adapterBytes", &Native::AdapterBytes),
         InstanceMethod("saveState", &Native::SaveState), InstanceMethod("loadState", &Native::LoadState), InstanceMethod("getParameter", &Native::GetParameter),
         InstanceMethod("setParameter", &Native::SetParameter), InstanceMethod("gradient", &Native::Gradient),
         InstanceMethod("parameterNames", &Native::ParameterNames), InstanceMethod("free", &Native::Free),
         InstanceMethod("setProfiling", &Native::SetProfiling), InstanceMethod("takeProfile", &Native::TakeProfile),
         InstanceMethod("reserve", &Native::Reserve), InstanceMethod("forwardKept", &Native::ForwardKept),
         InstanceMethod("backwardKept", &Native::BackwardKept)});
    exports.Set("NativeLearner", f);
    exports.Set("abiProblem", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
                  return Napi::String::New(info.Env(), abiProblem());
                }));
    exports.Set("ggmlVersion", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
                  return Napi::String::New(info.Env(), ggml_version());
                }));
    // convertModel(from, to, type) → number of tensors converted
    exports.Set("convertModel", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
                  return guard(info.Env(), [&]() -> Napi::Value {
                    const int n = convertModel(info[0].As<Napi::String>(), info[1].As<Napi::String>(),
                                               info[2].As<Napi::String>());
                    return Napi::Number::New(info.Env(), n);
                  });
                }));
    // probeUnsupportedOp(backendsDir, gpu) → the error checkSupported raises for an op the backend
    // lacks, so the error path is testable on the CPU and on a GPU.
    exports.Set("probeUnsupportedOp", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
                  return guard(info.Env(), [&]() -> Napi::Value {
                    return Napi::String::New(info.Env(), probeUnsupportedOp(info[0].As<Napi::String>(), info.Length() > 1 && info[1].ToBoolean()));
                  });
                }));
    return exports;
  }

  // new NativeLearner(path, backendsDir, { threads, gpu, loraRank, loraAlpha, loraTargets, seed, precision, graphCacheSize })
  Native(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Native>(info) {
    guard(info.Env(), [&] {
      const std::string problem = abiProblem();
      if (!problem.empty()) throw Error(problem);
      model_ = std::make_unique<Model>(info[0].As<Napi::String>(), info[1].As<Napi::String>(),
                                       optionsOf(info[2].As<Napi::Object>()));
      return info.Env().Undefined();
    });
  }

private:
  std::unique_ptr<Model> model_;

  Model &live() {
    if (!model_) throw Error("the learner was freed");
    return *model_;
  }

  Napi::Value Info(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model &m = live();
      auto o = Napi::Object::New(info.Env());
      o.Set("architecture", m.hp.arch);
      o.Set("mode", m.mode());
      o.Set("vocab", (double)m.hp.vocab);
      o.Set("dim", (double)m.hp.dim);
      o.Set("layers", (double)m.hp.layers);
      o.Set("heads", (double)m.hp.heads);
      o.Set("kvHeads", (double)m.hp.kvHeads);
      o.Set("context", (double)m.hp.context);
      o.Set("step", (double)m.step);
      double n = 0;
      for (auto *p : m.params) n += (double)ggml_nelements(p);
      o.Set("trainableParameters", n);
      o.Set("backend", ggml_backend_name(m.backend.get()));
      o.Set("precision", m.options.precision == Precision::F16 ? "f16" : "f32");
      o.Set("denseEmbeddingGradient", m.options.denseEmbeddingGrad);
      o.Set("reusedForwards", (double)m.graphs().reusedForwards());
      const MemoryReport r = m.graphs().memory();
      auto mem = Napi::Object::New(info.Env());
      mem.Set("weights", (double)r.weights);
      mem.Set("trainable", (double)r.trainable);
      mem.Set("gradients", (double)r.gradients);
      mem.Set("optimizer", (double)r.optimizer);
      mem.Set("transposedBase", (double)r.transposed);
      mem.Set("compute", (double)r.compute);
      mem.Set("computeTokens", (double)r.computeTokens);
      o.Set("memory", mem);
      return o;
    });
  }

  // forward(tokens, segments, length, rows, base = false) → Promise<Float32Array [rows*length]>;
  // `base`: the base model's, without the LoRA adapter.
  Napi::Value Forward(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      auto b = std::make_shared<Batch>(batchOf(info));
      const bool base = info.Length() > 4 && info[4].ToBoolean();
      return queue(
          info.Env(),
          [m, b, base](Job &job) {
            job.floats = m->graphs().run(b->tokens.data(), b->segments.data(), b->length, b->rows, nullptr, base);
          },
          floatsOf);
    });
  }

  // backward(tokens, segments, length, rows, coefficients) → Promise<Float32Array> (the log-probabilities)
  Napi::Value Backward(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      auto b = std::make_shared<Batch>(batchOf(info));
      auto coef = info[4].As<Napi::Float32Array>();
      if ((int64_t)coef.ElementLength() != b->length * b->rows) throw Error("coefficients length is not length × rows");
      for (size_t i = 0; i < coef.ElementLength(); i++)
        if (!std::isfinite(coef[i])) throw Error("coefficient " + std::to_string(i) + " is not finite");
      auto c = std::make_shared<std::vector<float>>(coef.Data(), coef.Data() + coef.ElementLength());
      return queue(
          info.Env(),
          [m, b, c](Job &job) {
            job.floats = m->graphs().run(b->tokens.data(), b->segments.data(), b->length, b->rows, c->data());
          },
          floatsOf);
    });
  }

  // forwardKept(tokens, segments, length, rows) → Promise<Float32Array>: the training graph's forward
  // half, activations kept for backwardKept.
  Napi::Value ForwardKept(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      auto b = std::make_shared<Batch>(batchOf(info));
      return queue(
          info.Env(),
          [m, b](Job &job) { job.floats = m->graphs().forwardKept(b->tokens.data(), b->segments.data(), b->length, b->rows); },
          floatsOf);
    });
  }

  // backwardKept(coefficients, length, rows) → Promise<void>: the backward half after forwardKept.
  Napi::Value BackwardKept(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      auto coef = info[0].As<Napi::Float32Array>();
      const int64_t L = info[1].As<Napi::Number>().Int64Value(), B = info[2].As<Napi::Number>().Int64Value();
      if ((int64_t)coef.ElementLength() != L * B) throw Error("coefficients length is not length × rows");
      for (size_t i = 0; i < coef.ElementLength(); i++)
        if (!std::isfinite(coef[i])) throw Error("coefficient " + std::to_string(i) + " is not finite");
      auto c = std::make_shared<std::vector<float>>(coef.Data(), coef.Data() + coef.ElementLength());
      return queue(info.Env(), [m, c, L, B](Job &) { m->graphs().backwardKept(c->data(), L, B); }, undefinedOf);
    });
  }

  Napi::Value GradNorm(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      return queue(info.Env(), [m](Job &job) { job.number = std::sqrt(m->optimizer().gradNormSq()); }, numberOf);
    });
  }

  // step(lr, beta1, beta2, eps, weightDecay, maxGradNorm) → Promise<grad norm before clipping>
  Napi::Value Step(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      AdamWSettings s{};
      float *fields[6] = {&s.lr, &s.beta1, &s.beta2, &s.eps, &s.weightDecay, &s.maxGradNorm};
      for (int i = 0; i < 6; i++) *fields[i] = info[i].As<Napi::Number>().FloatValue();
      Model *m = &live();
      return queue(info.Env(), [m, s](Job &job) { job.number = m->optimizer().step(s); }, numberOf);
    });
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      live().zeroGrad();
      return info.Env().Undefined();
    });
  }

  // save(path, "gguf" | "lora") → Promise<void>
  Napi::Value Save(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      const std::string path = info[0].As<Napi::String>(), format = info[1].As<Napi::String>();
      return queue(
          info.Env(), [m, path, format](Job &) { format == "lora" ? saveAdapter(*m, path) : saveModel(*m, path); },
          undefinedOf);
    });
  }

  // adapterBytes() → Buffer: the LoRA adapter GGUF that save(path, "lora") writes.
  Napi::Value AdapterBytes(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      return queue(info.Env(), [m](Job &job) { job.bytes = adapterBytes(*m); }, bytesOf);
    });
  }

  Napi::Value SaveState(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      const std::string path = info[0].As<Napi::String>();
      return queue(info.Env(), [m, path](Job &) { saveState(*m, path); }, undefinedOf);
    });
  }

  Napi::Value LoadState(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      const std::string path = info[0].As<Napi::String>();
      return queue(info.Env(), [m, path](Job &) { loadState(*m, path); }, undefinedOf);
    });
  }

  Napi::Value GetParameter(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const int64_t idx = info[1].As<Napi::Number>().Int64Value();
      ggml_tensor *t = live().element(info[0].As<Napi::String>(), idx, false);
      float v;
      ggml_backend_tensor_get(t, &v, idx * sizeof(float), sizeof(float));
      return Napi::Number::New(info.Env(), v);
    });
  }

  Napi::Value SetParameter(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const int64_t idx = info[1].As<Napi::Number>().Int64Value();
      ggml_tensor *t = live().element(info[0].As<Napi::String>(), idx, false);
      const float v = info[2].As<Napi::Number>().FloatValue();
      ggml_backend_tensor_set(t, &v, idx * sizeof(float), sizeof(float));
      live().weightsVersion++;
      return info.Env().Undefined();
    });
  }

  Napi::Value Gradient(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const int64_t idx = info[1].As<Napi::Number>().Int64Value();
      ggml_tensor *t = live().element(info[0].As<Napi::String>(), idx, true);
      float v;
      ggml_backend_tensor_get(t, &v, idx * sizeof(float), sizeof(float));
      return Napi::Number::New(info.Env(), v);
    });
  }

  // Trainable tensors: [name, elementCount][]
  Napi::Value ParameterNames(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model &m = live();
      auto arr = Napi::Array::New(info.Env(), m.params.size());
      for (size_t i = 0; i < m.params.size(); i++) {
        auto pair = Napi::Array::New(info.Env(), 2);
        pair.Set((uint32_t)0, std::string(m.params[i]->name));
        pair.Set((uint32_t)1, (double)ggml_nelements(m.params[i]));
        arr.Set((uint32_t)i, pair);
      }
      return arr;
    });
  }

  // reserve(length, rows, training) → Promise<bytes of the work buffer that batch shape needs>
  Napi::Value Reserve(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Model *m = &live();
      const int64_t L = info[0].As<Napi::Number>().Int64Value(), B = info[1].As<Napi::Number>().Int64Value();
      const bool training = info[2].ToBoolean();
      return queue(info.Env(), [m, L, B, training](Job &job) { job.number = (double)m->graphs().reserve(L, B, training); },
                   numberOf);
    });
  }

  // setProfiling(on): compute node by node and time each op type (for benchmarks).
  Napi::Value SetProfiling(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      live().graphs().setProfiling(info[0].As<Napi::Boolean>());
      return info.Env().Undefined();
    });
  }

  // takeProfile() → { [op]: { seconds, count } } since profiling started (or the last take).
  Napi::Value TakeProfile(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto o = Napi::Object::New(info.Env());
      for (auto &kv : live().graphs().takeProfile()) {
        auto t = Napi::Object::New(info.Env());
        t.Set("seconds", kv.second.seconds);
        t.Set("count", (double)kv.second.count);
        o.Set(kv.first, t);
      }
      return o;
    });
  }

  Napi::Value Free(const Napi::CallbackInfo &info) {
    model_.reset();
    return info.Env().Undefined();
  }
};

}  // namespace
}  // namespace wr1

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return wr1::Native::Init(env, exports); }

NODE_API_MODULE(learner, InitAll)
