"""Layers and losses shared by more than one task; this floor imports nothing else of ours.

- :mod:`.masking`: padding masks and the masked mean of (B, T, D) sequences.
- :mod:`.decoding`: greedy, sampled and beam-search decoding for any step function.
- :mod:`.xlinear`: X-Linear attention and X-LAN's refiner (Pan et al. 2020).
- :mod:`.gan_losses`: BCE (non-saturating) and hinge GAN losses; GAN-CLS's matching-aware loss.
- :mod:`.patchgan`: pix2pix's PatchGAN discriminator (2-D images or 3-D clips, conditional).
- :mod:`.conditioning`: StackGAN's conditioning augmentation and its KL term.
- :mod:`.dcgan`: the DCGAN generator and GAN-INT-CLS's matching-aware discriminator.
- :mod:`.grl`: the gradient reversal layer and its λ schedule (Ganin & Lempitsky 2015).
- :mod:`.text`: a GRU sentence encoder over word embeddings (retrieval; t2i's own should move onto it).
- :mod:`.contrastive`: VSE0 / VSE++ hinge ranking losses and the order-violation similarity.
- :mod:`.distill`: CE, label smoothing, KD and Teacher-free KD for single-label heads (Yuan et al. 2020).

Import from the submodule (``from crossmedia.nn.patchgan import PatchGAN``).
"""
