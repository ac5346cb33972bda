// Node-API surface of the native sampling engine: NativeEngine with submit / run (a Promise, on
// libuv's thread pool) / clear.
#include <napi.h>

#include <cstring>
#include <memory>

#include "engine.h"

namespace wr1 {
namespace {

class RunJob : public Napi::AsyncWorker {
public:
  RunJob(Napi::Env env, Engine *engine, int32_t steps)
      : Napi::AsyncWorker(env, "workflow-r1-sampler"), deferred(Napi::Promise::Deferred::New(env)), engine_(engine),
        steps_(steps) {}
  void Execute() override {
    try {
      results_ = engine_->run(steps_);
    } catch (const std::exception &e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    auto arr = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); i++) {
      const Result &r = results_[i];
      auto o = Napi::Object::New(env);
      o.Set("id", (double)r.id);
      auto tokens = Napi::Int32Array::New(env, r.tokens.size());
      if (!r.tokens.empty()) std::memcpy(tokens.Data(), r.tokens.data(), r.tokens.size() * sizeof(int32_t));
      auto logprobs = Napi::Float32Array::New(env, r.logprobs.size());
      if (!r.logprobs.empty()) std::memcpy(logprobs.Data(), r.logprobs.data(), r.logprobs.size() * sizeof(float));
      o.Set("tokens", tokens);
      o.Set("logprobs", logprobs);
      o.Set("finish", r.finish);
      if (!r.stop.empty()) o.Set("stop", r.stop);
      o.Set("position", (double)r.position);
      arr.Set((uint32_t)i, o);
    }
    deferred.Resolve(arr);
  }
  void OnError(const Napi::Error &e) override { deferred.Reject(e.Value()); }
  Napi::Promise::Deferred deferred;

private:
  Engine *engine_;
  int32_t steps_;
  std::vector<Result> results_;
};

template <typename F> Napi::Value guard(Napi::Env env, F f) {
  try {
    return f();
  } catch (const std::exception &e) {
    Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    exports.Set("NativeEngine",
                DefineClass(env, "NativeEngine",
                            {InstanceMethod("submit", &NativeEngine::Submit), InstanceMethod("run", &NativeEngine::Run),
                             InstanceMethod("clear", &NativeEngine::Clear),
                             InstanceMethod("cancel", &NativeEngine::Cancel),
                             InstanceMethod("setLora", &NativeEngine::SetLora),
                             InstanceMethod("setLoraBytes", &NativeEngine::SetLoraBytes), InstanceMethod("info", &NativeEngine::Info),
                             InstanceMethod("free", &NativeEngine::Free)}));
    return exports;
  }

  // new NativeEngine(modelPath, { backendsDir, contextPerSequence, sequences, threads, gpuLayers, batchSize, cacheType, flashAttention,
  // unifiedKv })
  NativeEngine(const Napi::CallbackInfo &info) : Napi::ObjectWrap<NativeEngine>(info) {
    guard(info.Env(), [&] {
      auto o = info[1].As<Napi::Object>();
      EngineOptions e;
      e.backendsDir = o.Get("backendsDir").As<Napi::String>();
      e.contextPerSequence = o.Get("contextPerSequence").As<Napi::Number>().Int32Value();
      e.sequences = o.Get("sequences").As<Napi::Number>().Int32Value();
      e.threads = o.Get("threads").As<Napi::Number>().Int32Value();
      e.gpuLayers = o.Get("gpuLayers").As<Napi::Number>().Int32Value();
      e.batchSize = o.Get("batchSize").As<Napi::Number>().Int32Value();
      e.cacheType = o.Get("cacheType").As<Napi::Number>().Int32Value();
      e.flashAttention = o.Get("flashAttention").ToBoolean();
      e.unifiedKv = o.Get("unifiedKv").ToBoolean();
      engine_ = std::make_unique<Engine>(info[0].As<Napi::String>(), e);
      return info.Env().Undefined();
    });
  }

private:
  std::unique_ptr<Engine> engine_;
  int64_t nextId_ = 1;

  Engine &live() {
    if (!engine_) throw Error("the engine was freed");
    return *engine_;
  }

  // submit({ sequence, position, feed: Int32Array, seed, temperature, topK, topP, maxTokens, stops,
  //   scoreFirst?, targets?: Int32Array }) → id
  Napi::Value Submit(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto o = info[0].As<Napi::Object>();
      Request r;
      r.id = nextId_++;
      r.sequence = o.Get("sequence").As<Napi::Number>().Int32Value();
      r.position = o.Get("position").As<Napi::Number>().Int32Value();
      auto feed = o.Get("feed").As<Napi::Int32Array>();
      r.feed.assign(feed.Data(), feed.Data() + feed.ElementLength());
      r.seed = (uint64_t)o.Get("seed").As<Napi::Number>().Int64Value();
      r.sampling.temperature = o.Get("temperature").As<Napi::Number>().FloatValue();
      r.sampling.topK = o.Get("topK").As<Napi::Number>().Int32Value();
      r.sampling.topP = o.Get("topP").As<Napi::Number>().FloatValue();
      r.maxTokens = o.Get("maxTokens").As<Napi::Number>().Int32Value();
      auto stops = o.Get("stops").As<Napi::Array>();
      for (uint32_t i = 0; i < stops.Length(); i++) r.stops.push_back(stops.Get(i).As<Napi::String>());
      if (o.Has("scoreFirst")) {
        r.scoreFirst = o.Get("scoreFirst").As<Napi::Number>().Int32Value();
        auto targets = o.Get("targets").As<Napi::Int32Array>();
        r.targets.assign(targets.Data(), targets.Data() + targets.ElementLength());
      }
      const int64_t id = r.id;
      live().submit(std::move(r));
      return Napi::Number::New(info.Env(), (double)id);
    });
  }

  // run(steps) → Promise<results of the requests that finished>
  Napi::Value Run(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto *job = new RunJob(info.Env(), &live(), info[0].As<Napi::Number>().Int32Value());
      auto promise = job->deferred.Promise();
      job->Queue();
      return promise;
    });
  }

  Napi::Value Clear(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      live().clear(info[0].As<Napi::Number>().Int32Value());
      return info.Env().Undefined();
    });
  }

  Napi::Value Cancel(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      live().cancel((int64_t)info[0].As<Napi::Number>().Int64Value());
      return info.Env().Undefined();
    });
  }

  // setLora(path, scale): "" removes the adapter.
  Napi::Value SetLora(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      live().setLora(info[0].As<Napi::String>(), info[1].As<Napi::Number>().FloatValue());
      return info.Env().Undefined();
    });
  }

  // setLoraBytes(bytes: Uint8Array, scale): an adapter GGUF held in memory.
  Napi::Value SetLoraBytes(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto bytes = info[0].As<Napi::Uint8Array>();
      live().setLoraBytes(bytes.Data(), bytes.ByteLength(), info[1].As<Napi::Number>().FloatValue());
      return info.Env().Undefined();
    });
  }

  Napi::Value Info(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto o = Napi::Object::New(info.Env());
      o.Set("vocab", live().vocab());
      o.Set("contextPerSequence", live().contextPerSequence());
      o.Set("decodes", (double)live().decodes());
      o.Set("decodedTokens", (double)live().decodedTokens());
      return o;
    });
  }

  Napi::Value Free(const Napi::CallbackInfo &info) {
    engine_.reset();
    return info.Env().Undefined();
  }
};

}  // namespace
}  // namespace wr1

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return wr1::NativeEngine::Init(env, exports); }

NODE_API_MODULE(sampler, InitAll)
