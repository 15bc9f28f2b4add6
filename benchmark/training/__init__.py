"""Trainers, kept out of the plugin folders: one entry point per trainer, and the training sets they share.

    python -m benchmark.training.default_model   # the shipped default NR model (metrics.name = "default")
    python -m benchmark.training.denoiser        # the DnCNN denoisers of dncnn / denoised_smoothing

:mod:`benchmark.training.trainset` builds the training sets (the bundled training photographs with graded
distortions, labelled or not); UAP (:mod:`benchmark.attacks.uap`) trains its perturbation on it too.
Trainers import the plugins they train (metrics, defenses) and use (attacks); plugins never import a
trainer. Nothing is imported here, so ``import benchmark.training.trainset`` stays light.
"""
