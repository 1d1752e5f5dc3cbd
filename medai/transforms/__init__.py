"""Transforms: augmentation applied to training batches, preprocessing fitted on the training split."""
