# GPAW build configuration used by scripts/install_dft.sh (GPAW_CONFIG points here).
# Serial GPAW (no MPI: SLURM job arrays run one crystal per task), compiled as C with gcc (GPAW 26.7 builds its
# C sources as C++ unless the compiler is a C compiler; a later release will need a C++ compiler), linked against
# Debian's libxc (libxc-dev) and OpenBLAS (libopenblas-dev), which also provides LAPACK.
mpi = False
compiler = "gcc"
libraries = ["xc", "openblas"]
