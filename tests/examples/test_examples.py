"""test_examples.py - the command-line examples as a user runs them: lmrt-info and
lmrt-caps on real, hand-made and hostile GGUF files, and lmrt-bench's report on the
built-in model. A crash, a hang or a zero exit on a broken file fails the test.

usage: python3 test_examples.py BUILD_EXAMPLES_DIR SOURCE_ROOT
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

EXAMPLES, ROOT = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import lmrt_gguf as g  # noqa: E402

STORIES = os.path.join(ROOT, "lib", "model", "builtin", "stories260K.gguf")
TIMEOUT = 20


def run(tool, *args):
    p = subprocess.run([os.path.join(EXAMPLES, tool), *args], capture_output=True,
                       timeout=TIMEOUT, text=True, errors="replace")
    return p.returncode, p.stdout, p.stderr


def small_model(multimodal=False, policy=None):
    w = g.Writer()
    w.add_str("general.architecture", "llama")
    w.add_str("general.name", "tiny")
    w.add_u32("llama.block_count", 1)
    w.add_u32("llama.embedding_length", 32)
    w.add_array("tokenizer.ggml.tokens", g.STRING, ["<unk>", "<s>", "</s>", "a"])
    w.add_array("tokenizer.ggml.scores", g.FLOAT32, [0.0, 0.0, 0.0, -1.5])
    for key, values in (policy or {}).items():
        w.add_array(key, g.STRING, values)
    w.add_tensor("token_embd.weight", "F32", [32, 4], bytes(32 * 4 * 4))
    w.add_tensor("blk.0.attn_q.weight", "Q8_0", [32, 32], bytes(32 * 34))
    if multimodal:
        w.add_tensor("v.patch_embd.weight", "F16", [32, 2], bytes(32 * 2 * 2))
        w.add_tensor("a.conv1d.1.weight", "F16", [32, 2], bytes(32 * 2 * 2))
    return w.to_bytes()


class Scratch(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def file(self, name, data):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return path


class InfoTest(Scratch):
    def test_builtin_model_prints_metadata_and_tensors(self):
        rc, out, err = run("lmrt-info")
        self.assertEqual(rc, 0, err)
        self.assertIn("architecture: llama", out)
        self.assertIn("metadata (19 keys)", out)
        self.assertIn("tensors (48)", out)
        self.assertIn("token_embd.weight", out)

    def test_file_matches_independent_reader(self):
        rc, out, err = run("lmrt-info", STORIES)
        self.assertEqual(rc, 0, err)
        ref = g.Reader(STORIES)
        for name, (type_name, dims, _) in ref.tensors.items():
            shape = " x ".join(str(d) for d in dims)
            self.assertRegex(out, r"\b%s\s+%s\s+%s\b" % (name.replace(".", r"\."), type_name, shape))

    def test_every_truncation_is_a_format_error(self):
        data = small_model(multimodal=True)
        self.assertEqual(run("lmrt-info", self.file("ok.gguf", data))[0], 0)
        for n in range(len(data)):
            path = self.file("cut.gguf", data[:n])
            rc, out, err = run("lmrt-info", path)
            self.assertEqual(rc, 1, "truncated at %d: rc %d %s" % (n, rc, err))
            self.assertIn("LMRT_E_FORMAT", err, "truncated at %d" % n)

    def test_random_corruption_never_crashes(self):
        data = bytearray(small_model(multimodal=True))
        rng = random.Random(1234)
        header_end = len(data) - 32 * 4 * 4 - 32 * 34 - 2 * 128
        for i in range(400):
            bad = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(header_end)
                bad[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
            rc, out, err = run("lmrt-info", self.file("bad.gguf", bytes(bad)))
            self.assertIn(rc, (0, 1), "mutant %d: rc %d %s" % (i, rc, err[-500:]))
            if rc == 1:
                self.assertIn("lmrt-info: LMRT_E_", err)

    def test_missing_file_is_an_io_error(self):
        rc, out, err = run("lmrt-info", "/nonexistent/x.gguf")
        self.assertEqual(rc, 1)
        self.assertIn("LMRT_E_IO", err)
        self.assertIn("/nonexistent/x.gguf", err)


class CapsTest(Scratch):
    def test_builtin_model_is_text_only_everywhere(self):
        rc, out, err = run("lmrt-caps", "--region", "DE")
        self.assertEqual(rc, 0, err)
        self.assertIn("text       licensed", out)
        self.assertIn("image      not in this model", out)

    def test_multimodal_model_in_eu_and_us(self):
        path = self.file("mm.gguf", small_model(multimodal=True))
        rc, out, err = run("lmrt-caps", "-m", path, "--region", "fr", "--json")
        self.assertEqual(rc, 0, err)
        caps = json.loads(out)
        self.assertEqual(caps["region"], "FR")
        self.assertTrue(caps["region_in_eu"])
        self.assertEqual(caps["present"], ["text", "image", "audio"])
        self.assertEqual(caps["licensed"], ["text"])
        self.assertEqual(caps["withheld"]["audio"], "audio withheld in FR: multimodal models "
                         "are not licensed in the European Union (default policy)")
        self.assertIn("cpu", caps["runtime"]["backends"])
        for region in ("US", "JP", "BR", "NO", "CH", "GB"):
            caps = json.loads(run("lmrt-caps", "-m", path, "--region", region, "--json")[1])
            self.assertEqual(caps["licensed"], ["text", "image", "audio"], region)

    def test_unknown_region_fails_closed(self):
        path = self.file("mm.gguf", small_model(multimodal=True))
        caps = json.loads(run("lmrt-caps", "-m", path, "--region", "XX", "--json")[1])
        self.assertFalse(caps["region_known"])
        self.assertEqual(caps["licensed"], ["text"])

    def test_invalid_region_exits_nonzero_with_message(self):
        for bad in ("DEU", "1A", "D", "d\u20ac"):
            rc, out, err = run("lmrt-caps", "--region", bad)
            self.assertEqual(rc, 1, bad)
            self.assertIn("LMRT_E_INVALID_ARG", err)
            self.assertIn("ISO 3166-1", err)

    def test_model_and_deployer_policies_narrow(self):
        path = self.file("mm.gguf", small_model(multimodal=True,
                                                policy={"lmrt.policy.audio.deny": ["US"]}))
        caps = json.loads(run("lmrt-caps", "-m", path, "--region", "US", "--json")[1])
        self.assertEqual(caps["licensed"], ["text", "image"])
        self.assertIn("model policy", caps["withheld"]["audio"])
        policy = self.file("deployer.policy", "# ours\nallow image JP  # only Japan\n")
        rc, out, err = run("lmrt-caps", "-m", path, "--region", "US", "--policy", policy, "--json")
        self.assertEqual(rc, 0, err)
        caps = json.loads(out)
        self.assertEqual(caps["licensed"], ["text"])
        self.assertIn("deployer policy", caps["withheld"]["image"])

    def test_hostile_files_are_errors_not_crashes(self):
        data = small_model(multimodal=True)
        for n in range(0, len(data), 7):
            rc, out, err = run("lmrt-caps", "-m", self.file("cut.gguf", data[:n]), "--region", "US")
            self.assertEqual(rc, 1, "truncated at %d: %s" % (n, err))
            self.assertIn("LMRT_E_FORMAT", err)


class BenchTest(unittest.TestCase):
    """lmrt-bench on the built-in model: a small run, so only the shape of the
    report is checked, never a speed."""
    KEYS = ("model", "file_type", "n_threads", "repeats", "n_prompt", "n_gen", "n_ctx",
            "pp_tokens_per_s", "tg_tokens_per_s", "pp_tokens_per_s_min", "pp_tokens_per_s_max",
            "tg_tokens_per_s_min", "tg_tokens_per_s_max", "bytes_per_token",
            "weight_bytes_per_token", "kv_bytes_per_token", "bandwidth_gb_s",
            "roofline_fraction", "kv_cache_bytes", "peak_rss_bytes", "load_s", "cpu_simd",
            "tg_after_prompt_tokens_per_s", "tg_after_prompt_tokens_per_s_min",
            "tg_after_prompt_tokens_per_s_max", "kv_bytes_per_token_after_prompt",
            "bytes_per_token_after_prompt", "roofline_fraction_after_prompt",
            "bandwidth_paired_gb_s", "bandwidth_paired_samples_gb_s", "roofline_fraction_paired",
            "roofline_fraction_paired_min", "roofline_fraction_paired_max",
            "roofline_fraction_after_prompt_paired", "rss_anon_bytes", "rss_anon_huge_bytes",
            "rss_file_bytes", "rss_file_huge_bytes")

    def test_json_report_has_every_figure(self):
        rc, out, err = run("lmrt-bench", "-p", "8", "-n", "8", "-r", "2", "-t", "2",
                           "--bw-mib", "64", "--bw-seconds", "0", "--json")
        self.assertEqual(rc, 0, err)
        r = json.loads(out)   # exactly one object: trailing text would fail here
        for key in self.KEYS:
            self.assertIn(key, r)
        self.assertEqual(r["model"], "builtin")
        self.assertEqual((r["n_prompt"], r["n_gen"], r["n_ctx"], r["repeats"]), (8, 8, 16, 2))
        self.assertEqual(r["n_threads"], 2)
        for key in ("pp", "tg", "tg_after_prompt"):
            self.assertEqual(len(r[key + "_samples"]), 2)
            self.assertGreater(r[key + "_tokens_per_s_min"], 0)
            self.assertLessEqual(r[key + "_tokens_per_s_min"], r[key + "_tokens_per_s"])
            self.assertLessEqual(r[key + "_tokens_per_s"], r[key + "_tokens_per_s_max"])
        for key in ("bandwidth_gb_s", "roofline_fraction", "roofline_fraction_after_prompt",
                    "peak_rss_bytes", "load_s"):
            self.assertGreater(r[key], 0, key)
        # The paired roofline: each repeat's tgN over the bandwidth read right after it.
        bw = r["bandwidth_paired_samples_gb_s"]
        self.assertEqual(len(bw), 2)
        self.assertGreater(min(bw), 0)
        self.assertAlmostEqual(r["bandwidth_paired_gb_s"], (bw[0] + bw[1]) / 2, delta=0.002)
        paired = sorted(t * r["bytes_per_token"] / (b * 1e9) for t, b in zip(r["tg_samples"], bw))
        self.assertAlmostEqual(r["roofline_fraction_paired_min"], paired[0],
                               delta=1e-3 * paired[0])
        self.assertAlmostEqual(r["roofline_fraction_paired_max"], paired[1],
                               delta=1e-3 * paired[1])
        self.assertAlmostEqual(r["roofline_fraction_paired"], sum(paired) / 2,
                               delta=1e-3 * paired[1])
        after = sorted(t * r["bytes_per_token_after_prompt"] / (b * 1e9)
                       for t, b in zip(r["tg_after_prompt_samples"], bw))
        self.assertAlmostEqual(r["roofline_fraction_after_prompt_paired"], sum(after) / 2,
                               delta=1e-3 * after[1])
        self.assertGreater(r["rss_anon_bytes"], 0)
        self.assertLessEqual(r["rss_anon_huge_bytes"], r["rss_anon_bytes"])
        self.assertLessEqual(r["rss_file_huge_bytes"], r["rss_file_bytes"])
        # stories260K: 5 layers, 4 kv heads of 8, F32 cache: 1280 bytes per position.
        self.assertEqual(r["kv_cache_bytes"], 16 * 1280)
        # tg8 decodes positions 0..7 (llama-bench's tg8), tg8@p8 positions 8..15.
        self.assertEqual(r["kv_bytes_per_token"], 1280 * 9 // 2)
        self.assertEqual(r["kv_bytes_per_token_after_prompt"], 1280 * 8 + 1280 * 9 // 2)
        self.assertEqual(r["bytes_per_token"],
                         r["weight_bytes_per_token"] + r["kv_bytes_per_token"])
        self.assertEqual(r["bytes_per_token_after_prompt"],
                         r["weight_bytes_per_token"] + r["kv_bytes_per_token_after_prompt"])
        # Tied output: the whole token_embd plus one of its 512 rows, at most every tensor.
        self.assertLessEqual(r["weight_bytes_per_token"], r["model_bytes"] * 513 // 512)
        self.assertTrue(r["cpu_simd"])

    def test_text_report_states_the_formulas(self):
        rc, out, err = run("lmrt-bench", "-p", "4", "-n", "4", "-r", "1", "--bw-mib", "16",
                           "--bw-seconds", "0")
        self.assertEqual(rc, 0, err)
        self.assertIn("| pp4 ", out)
        self.assertIn("| tg4 ", out)
        self.assertIn("| tg4@p4 ", out)
        self.assertIn("n_layer x (past + (n+1)/2) x n_head_kv x head_dim x 2 x 4 bytes", out)
        self.assertIn("bandwidth:", out)
        self.assertIn("paired:", out)

    def test_bad_arguments_exit_nonzero(self):
        for args in (["-p", "0"], ["-n", "-1"], ["-r", "0"], ["-t", "x"], ["-p"], ["--bogus"],
                     ["--bw-seconds", "-1"], ["--bw-mib", "0"],
                     ["-p", "2000", "-n", "100"]):   # more than stories260K's 2048 positions
            rc, out, err = run("lmrt-bench", *args, "--json")
            self.assertNotEqual(rc, 0, args)
            self.assertEqual(out, "", args)
            self.assertIn("lmrt-bench:", err, args)
        rc, out, err = run("lmrt-bench", "-m", "/nonexistent/x.gguf", "--json")
        self.assertEqual(rc, 1)
        self.assertIn("LMRT_E_IO", err)


class AbTest(Scratch):
    """lmrt-ab: two copies of this build's library side by side on the built-in model."""

    def library_copies(self):
        lib = os.path.realpath(os.path.join(EXAMPLES, "..", "lib", "liblmrt.so"))
        paths = []
        for name in ("a.so", "b.so"):
            with open(lib, "rb") as f:
                paths.append(self.file(name, f.read()))
        return paths

    def test_json_report(self):
        a, b = self.library_copies()
        rc, out, err = run("lmrt-ab", a, b, "-n", "4", "-r", "3", "-t", "2", "--json")
        self.assertEqual(rc, 0, err)
        r = json.loads(out)
        self.assertEqual((r["lib_a"], r["lib_b"], r["model"]), (a, b, "builtin"))
        self.assertEqual((r["n_gen"], r["rounds"], r["n_threads"]), (4, 3, 2))
        self.assertEqual(len(r["ratios"]), 3)
        self.assertAlmostEqual(r["ratio"], sorted(r["ratios"])[1], delta=1e-4)
        self.assertAlmostEqual(r["ratio_min"], min(r["ratios"]), delta=1e-4)
        self.assertEqual(r["b_wins"], sum(x > 1 for x in r["ratios"]))
        self.assertGreater(r["a_tokens_per_s"], 0)
        self.assertGreater(r["b_tokens_per_s"], 0)
        self.assertEqual(r["rounds_with_other_tokens"], 0)   # one build: same tokens

    def test_text_report_and_refusals(self):
        a, b = self.library_copies()
        rc, out, err = run("lmrt-ab", a, b, "-n", "3", "-r", "2")
        self.assertEqual(rc, 0, err)
        self.assertIn("B/A per round: median", out)
        self.assertIn("tokens: the same in every round", out)
        rc, out, err = run("lmrt-ab", a, a, "-n", "3", "-r", "1")   # one library
        self.assertEqual(rc, 1)
        self.assertIn("one library", err)
        for args in ([a], [a, b, "-r", "0"], [a, b, "-n", "x"], [a, b, "--bogus"]):
            rc, out, err = run("lmrt-ab", *args)
            self.assertEqual(rc, 2, args)
            self.assertIn("usage:", err)
        rc, out, err = run("lmrt-ab", a, os.path.join(self.dir.name, "none.so"))
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
