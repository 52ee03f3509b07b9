"""MIND (Modality-INformed knowledge Distillation): the chapter's experiments on AV digits and PBC."""
