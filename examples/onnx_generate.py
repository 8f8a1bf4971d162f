"""Generate text from `rnnkit export` output with onnxruntime and NumPy alone: no rnnkit, no torch.
Same arguments and, for the same --seed, the same characters as `rnnkit generate`."""
import argparse, json, sys
import numpy as np, onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("model"), p.add_argument("--prime", default="\n"), p.add_argument("--length", type=int, default=500)
p.add_argument("--temperature", type=float, default=0.8), p.add_argument("--top-k", type=int, default=0)
p.add_argument("--seed", type=int, default=None)
a = p.parse_args()
vocab = a.model.removesuffix(".onnx") + ".vocab.json"
chars = json.load(open(vocab, encoding="utf-8"))["chars"]            # id k >= 1 is chars[k - 1]; 0: unknown
index, rng = {c: k + 1 for k, c in enumerate(chars)}, np.random.default_rng(a.seed)
sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
state = {i.name: np.zeros((i.shape[0], 1, i.shape[2]), np.float32) for i in sess.get_inputs()[1:]}  # h0 (, c0):
out = sess.run(None, {"tokens": np.array([[index.get(c, 0)] for c in a.prime], np.int64), **state})  # zeros first
if out[0].shape[-1] != len(chars) + 1:
    sys.exit(f"{vocab}: {len(chars) + 1} symbols, but the model predicts {out[0].shape[-1]}")
sys.stdout.write(a.prime)
for _ in range(a.length):
    z = out[0][-1, 0].astype(np.float64)
    z[0] = -np.inf                                                    # never emit the unknown token
    if a.temperature <= 0:
        k = int(np.argmax(z))
    else:
        z = z / a.temperature
        if 0 < a.top_k < len(z):
            z = np.where(z >= np.partition(z, -a.top_k)[-a.top_k], z, -np.inf)
        z = z - z.max()
        prob = np.exp(z - np.log(np.exp(z).sum()))
        k = int(rng.choice(len(prob), p=prob / prob.sum()))
    sys.stdout.write(chars[k - 1])
    out = sess.run(None, {"tokens": np.array([[k]], np.int64), **dict(zip(state, out[1:]))})   # h_n -> h0 ...
sys.stdout.write("\n")
