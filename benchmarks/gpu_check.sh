#!/usr/bin/env bash
# The checks of nhpipe on a CUDA GPU (benchmarks/gpu_h200.md has the last results).
# Run from the repository root of an install with a CUDA build of PyTorch:
#     bash benchmarks/gpu_check.sh OUTDIR
# 1. tests/test_cuda.py (skipped without a GPU): maps on CUDA equal the CPU's within their
#    sampling noise, the same seed gives the same map, training on CUDA resumes;
# 2. the README's example map with each network on cuda and on cpu, scored against its truth;
# 3. benchmarks/speed.py on the GPU at 1, 8 and 32 regions per call;
# 4. benchmarks/endtoend.py (nhpipe run per stage; --device auto takes the GPU);
# 5. the whole test suite, where --device auto now means the GPU (over 140 s there).
set -u
out=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$out"
python -m pytest -v -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/cuda_tests.log"
python examples/make_example_map.py
for m in unet cinn ddpm; do
  for d in cuda cpu; do
    TIMEFORMAT="$m $d %R s"
    time nhpipe run examples/example_NH2.fits --distance 400pc --species H2 --model "$m" \
      --samples 64 --device "$d" --out "$out/example_${m}_$d.fits" --overwrite
    python examples/make_example_map.py --score "$out/example_${m}_$d.fits"
  done
done 2>&1 | tee "$out/example.log"
python benchmarks/speed.py --device cuda --batch 1 8 32 --out "$out/speed.json" \
  | tee "$out/speed.log"
python benchmarks/endtoend.py --ddpm-steps 4 --out "$out/endtoend" 2>&1 | tee "$out/endtoend.log"
python -m pytest -q -p no:cacheprovider -rfE 2>&1 | tee "$out/pytest.log"
