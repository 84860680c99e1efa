"""Physical constants and voxel phase codes shared by every layer."""

FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)
BOLTZMANN = 1.380649e-23  # J/K
# Charge stored by dense lithium (F / 13.0 cm^3/mol): 1 mAh/cm^2 is 4.85 um of lithium.
LITHIUM_MAH_PER_CM3 = 2061.0

# Voxel phases (uint8). Conductors are HOST_CONDUCTIVE and LITHIUM.
ELECTROLYTE = 0
HOST_CONDUCTIVE = 1
HOST_DIELECTRIC = 2
LITHIUM = 3

PHASE_NAMES = {
    ELECTROLYTE: "electrolyte",
    HOST_CONDUCTIVE: "host_conductive",
    HOST_DIELECTRIC: "host_dielectric",
    LITHIUM: "lithium",
}
