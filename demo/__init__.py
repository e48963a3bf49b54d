"""The demos' and tests' priors with known posteriors, outside the runtime packages: a Gaussian-mixture face
prior (face_prior, gaussian_mixture), its ComfyUI MODEL and VAE (oracle_model), the Face Prior Demo Model
node (nodes), and the scores the benchmarks and tests compute (metrics). ComfyUI imports this package only
for the demo node."""
