"""ddimlib: the kernels of Song, Meng & Ermon, "Denoising Diffusion Implicit Models" (ICLR 2021,
arXiv:2010.02502), written once, in the paper's notation, for the notebooks in notebooks/.

Modules, in the order the paper introduces them:
- schedules: alpha_t (DDIM's cumulative alpha, DDPM's alpha-bar) and the subsequences tau.
- forward:   the marginals q(x_t | x0) and the non-Markovian forward processes q_sigma (Section 3.1).
- sampling:  the generative process, DDIM Eq. 12 for any eta, sigma-hat, and DDPM's sampler (Section 4).
- ode:       DDIM as Euler's method on an ODE, encoding and decoding, slerp (Sections 4.3, 5.3, 5.4).
- oracle:    exact noise predictors for Gaussian mixtures and finite data sets (no training needed).
- objective: J_sigma = L_gamma + C with the exact weights, and L_simple (Section 3.2).
- data, models, training, train, metrics, plotting: the small data sets, the noise predictors, training
  with safe checkpoints (`python -m ddimlib.train`), offline quality metrics, and figure helpers.
- timing, explorer: wall-clock measurements of samplers (time linear in S, the sampler's overhead) and
  the interactive sampler explorer of notebook 04.
"""

__version__ = "0.1.0"
