"""Dense-core catalogues: reading, apertures on nhpipe maps, the A.3/A.4 correction of the
core densities (Ribeiro & Hily-Blant; Konyves et al. 2020, A&A 635, A34) and its report.

The catalogue stage reads nhpipe output files and catalogues; it never imports a model.
Radii and positions are kept; densities are replaced by the corrected ones.

- :mod:`._read`: :func:`read_catalog` (HGBS archive text, CDS, FITS, VOTable, ECSV), the
  :class:`CatalogueColumns` map, positions, radii, row validation;
- :mod:`._apertures`: :func:`measure_apertures` (photutils), the cores' contrast and
  envelope ratio, and quantile draws;
- :mod:`._correct`: :class:`CorrectionOptions` and :func:`correct_catalog`, which returns
  the table and the Monte-Carlo draws;
- :mod:`._report`: :func:`write_outputs` (ECSV, FITS, DS9 regions, Fig. 10, CMF).
"""

from ._apertures import SURROUNDINGS, MapStats, blended_cores, core_profile, \
    draw_from_quantiles, measure_apertures, own_excess
from ._correct import LOCAL, LOW_CONTRAST, SEPARATION, CorrectionOptions, correct_catalog, \
    between_cores_correlation, joint_draws, local_correlation, map_card, profile_term, \
    profile_width, shared_error_matrix, term_method
from ._read import CatalogueColumns, check_columns, column_map, core_coordinates, \
    core_mass_msun, core_radius_pc, read_catalog, read_hgbs, validate_rows
from ._report import STATUS_COLORS, write_outputs

__all__ = ["CatalogueColumns", "CorrectionOptions", "LOCAL", "LOW_CONTRAST", "MapStats",
           "SEPARATION", "STATUS_COLORS", "SURROUNDINGS", "between_cores_correlation",
           "blended_cores", "check_columns",
           "column_map", "core_coordinates", "core_mass_msun", "core_profile",
           "core_radius_pc", "correct_catalog", "draw_from_quantiles", "joint_draws",
           "local_correlation", "map_card", "measure_apertures", "own_excess", "profile_term",
           "profile_width",
           "read_catalog", "read_hgbs", "shared_error_matrix", "term_method",
           "validate_rows", "write_outputs"]
