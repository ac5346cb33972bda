#include "llama.h"

#include <cmath>

namespace wr1 {

// x: [d, L*B] → [d, L*B]. Sequences are rows of length L; several may be packed into one row,
// kept apart by the mask and by positions that restart at each sequence.
ggml_tensor *llamaBlock(const Model &m, ggml_context *ctx, const Layer &b, ggml_tensor *x, const GraphInputs &in,
                        int64_t L, int64_t B) {
  const Hparams &hp = m.hp;
  const int64_t N = L * B, d = hp.dim, hd = hp.headDim, H = hp.heads, Hkv = hp.kvHeads;
  const int rope = m.arch->ropeMode;
  auto mm = [&](ggml_tensor *w, ggml_tensor *y) { return m.matmul(ctx, w, y, in.adapter); };
  ggml_tensor *cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp.eps), b.attnNorm);
  ggml_tensor *q = mm(b.wq, cur), *k = mm(b.wk, cur), *v = mm(b.wv, cur);
  if (b.bq) q = ggml_add(ctx, q, b.bq);
  if (b.bk) k = ggml_add(ctx, k, b.bk);
  if (b.bv) v = ggml_add(ctx, v, b.bv);
  q = ggml_rope_ext(ctx, ggml_reshape_3d(ctx, q, hd, H, N), in.positions, nullptr, hp.nRot, rope, hp.context,
                    hp.freqBase, hp.freqScale, 0.0f, 1.0f, 32.0f, 1.0f);
  k = ggml_rope_ext(ctx, ggml_reshape_3d(ctx, k, hd, Hkv, N), in.positions, nullptr, hp.nRot, rope, hp.context,
                    hp.freqBase, hp.freqScale, 0.0f, 1.0f, 32.0f, 1.0f);
  // Heads and rows share one dimension (head h of row r at h + H*r): mul_mat's broadcast then
  // maps query head h to KV head h / (H/Hkv) of the same row (GQA).
  q = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, q, hd, H, L, B), 0, 2, 1, 3)), hd, L,
                      H * B);
  k = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, k, hd, Hkv, L, B), 0, 2, 1, 3)), hd,
                      L, Hkv * B);
  ggml_tensor *vt = ggml_reshape_3d(
      ctx, ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, v, hd, Hkv, L, B), 1, 2, 0, 3)), L, hd, Hkv * B);
  ggml_tensor *kq = ggml_reshape_4d(ctx, ggml_mul_mat(ctx, k, q), L, L, H, B);  // [L_k, L_q, H, B]
  kq = ggml_soft_max_ext(ctx, kq, in.mask, 1.0f / std::sqrt((float)hd), 0.0f);   // one mask per row
  ggml_tensor *o = ggml_mul_mat(ctx, vt, ggml_reshape_3d(ctx, kq, L, L, H * B));  // [hd, L, H*B]
  o = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, o, hd, L, H, B), 0, 2, 1, 3));  // [hd, H, L, B]
  o = mm(b.wo, ggml_reshape_2d(ctx, o, d, N));
  if (b.bo) o = ggml_add(ctx, o, b.bo);
  x = ggml_add(ctx, x, o);
  cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp.eps), b.ffnNorm);
  ggml_tensor *h = ggml_mul(ctx, ggml_silu(ctx, mm(b.wg, cur)), mm(b.wu, cur));
  return ggml_add(ctx, x, mm(b.wd, h));
}

const Architecture llamaArchitecture = {"llama", 0, llamaBlock};

}  // namespace wr1
