"""Model files: one zip of a manifest and npy arrays, written atomically, read by an allowlist.

``container`` reads the zip and its npy members without trusting them; ``schema`` names what a
file may hold; ``values`` decodes manifest values; ``state`` is the fitted state as plain parts,
built from a model (``encode`` writes it) or from a file (``decode`` reads it); ``checks`` are
the consistency checks both run; ``read`` opens and identifies a file; ``atomic`` writes files
atomically and removes the temporary files of killed saves; ``model_file`` is save and load.
"""
