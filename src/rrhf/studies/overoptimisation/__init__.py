"""The over-optimisation study (config key ``overoptimisation``): proxy and gold reward against sqrt(KL(pi || rho))
for best-of-n, along training and at evaluated settings."""
