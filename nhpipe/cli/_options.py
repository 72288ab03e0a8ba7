"""Options that several commands share, declared once."""

from __future__ import annotations

from ..inference import PRECISIONS


def add_device(parser) -> None:
    """--device: where the model runs."""
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the model runs (default: auto = cuda if available)")


def add_speed_options(parser, *, per_worker: bool = False) -> None:
    """--steps, --precision and --threads: how fast the networks run."""
    parser.add_argument("--steps", type=int, default=None,
                        help="ddpm only: sampler steps, i.e. network evaluations per sample "
                        "(default: the model card's; 4 is about twice as fast)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="arithmetic of the network: auto = bfloat16 on CPUs with native "
                        "bfloat16 (AVX512-BF16/AMX), float32 elsewhere (default: auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the network " + ("per worker (default: cores / "
                        "workers)" if per_worker else "(default: all cores)"))
