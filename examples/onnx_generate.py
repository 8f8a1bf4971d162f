"""Generate text from `rnnkit export` output with onnxruntime and NumPy alone: no rnnkit, no torch
(a BPE model also needs Hugging Face tokenizers, to read the prime). Same arguments and, for the
same --seed, the same text as `rnnkit generate`, whatever the tokens: characters, words or BPE."""
import argparse, codecs, json, re, sys
from pathlib import Path
import numpy as np, onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("model"), p.add_argument("--prime", default="\n"), p.add_argument("--length", type=int, default=500)
p.add_argument("--temperature", type=float, default=1.0), p.add_argument("--top-k", type=int, default=0)
p.add_argument("--top-p", type=float, default=1.0), p.add_argument("--seed", type=int, default=None)
a = p.parse_args()
vocab = a.model.removesuffix(".onnx") + ".vocab.json"
meta = json.load(open(vocab, encoding="utf-8"))
table = [bytes.fromhex(h) for h in meta["token_bytes"]]              # id k: the bytes it stands for; 0: unknown
kind = meta.get("tokens", "char")
if kind == "bpe":                                                     # byte-level BPE: tokenizers reads the prime
    from tokenizers import Tokenizer
    prime = Tokenizer.from_file(str(Path(a.model).parent / meta["tokenizer"])).encode(a.prime).ids
else:                                                                 # a word, else its characters one by one
    index = {b.decode("utf-8"): k for k, b in enumerate(table) if k}
    pieces = re.findall(meta["pattern"], a.prime) if kind == "word" else list(a.prime)
    prime = [i for w in pieces for i in ([index[w]] if w in index else [index.get(c, 0) for c in w])]
sess, rng = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"]), np.random.default_rng(a.seed)
state = {i.name: np.zeros((i.shape[0], 1, i.shape[2]), np.float32) for i in sess.get_inputs()[1:]}  # h0 (, c0):
out = sess.run(None, {"tokens": np.array([[k] for k in prime], np.int64), **state})  # zeros first
if out[0].shape[-1] != len(table):
    sys.exit(f"{vocab}: {len(table)} symbols, but the model predicts {out[0].shape[-1]}")
text = codecs.getincrementaldecoder("utf-8")(errors="replace")       # a BPE token may end mid-character
sys.stdout.write(a.prime)
for _ in range(a.length):
    z = out[0][-1, 0].astype(np.float64)                              # logits (or log-probabilities)
    z[0] = -np.inf                                                    # never emit the unknown token
    if a.temperature <= 0:
        k = int(np.argmax(z))
    else:
        z = (z - z.max()) / a.temperature
        if 0 < a.top_k < len(z):
            z = np.where(z >= np.partition(z, -a.top_k)[-a.top_k], z, -np.inf)
        z = z - z.max()
        prob = np.exp(z - np.log(np.exp(z).sum()))
        if a.top_p < 1:                                               # nucleus: the most likely while the mass
            order = np.argsort(-prob, kind="stable")                  # before each is below top-p
            prob = np.where(np.isin(np.arange(len(prob)), order[np.cumsum(prob[order]) - prob[order] < a.top_p]), prob, 0.0)
        k = int(rng.choice(len(prob), p=prob / prob.sum()))
    sys.stdout.write(text.decode(table[k]))
    out = sess.run(None, {"tokens": np.array([[k]], np.int64), **dict(zip(state, out[1:]))})   # h_n -> h0 ...
sys.stdout.write(text.decode(b"", final=True) + "\n")
