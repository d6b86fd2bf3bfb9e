"""One process of a training run on several processes, as tests/test_distributed.py starts it (the variables of
torchrun: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

    python tests/ddp_worker.py STATE STEPS SAVE_EVERY [RESUME]

trains CONFIG on the digits (or goes on from the training state RESUME) for STEPS steps on the CPU, writing the
training state to STATE every SAVE_EVERY steps (rank 0) and at the end, and exits with rank 0's status.
"""

import sys

from ddimlib import distributed
from ddimlib.data import load_image_set
from ddimlib.training import TrainConfig, Trainer

# a small UNet without dropout: with dropout, each process draws its own masks and the runs agree only in distribution
CONFIG = TrainConfig(
    dataset="digits",
    model="unet",
    model_config={"base": 8, "mults": [1, 2], "groups": 4, "dropout": 0.0},
    batch_size=32,
    seed=3,
)


def main(state: str, steps: int, save_every: int, resume: str | None = None) -> int:
    world, device = distributed.start("cpu") if distributed.launched() else (distributed.World(), "cpu")
    data = load_image_set("digits", "train").images
    trainer = Trainer.resume(resume, data, device, world) if resume else Trainer(CONFIG, data, device, world)
    trainer.train(steps=steps, progress=False, save_every=save_every, save_to=state)
    if world.is_main:
        trainer.save(state)
    return world.finish(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]))
