// Package score computes the early-warning and sepsis screening scores
// Aorta alerts on: NEWS2, qSOFA and SIRS. It is pure: no I/O, no clock.
//
// The caller gathers, for each parameter the score reads (Parameters), the
// latest valid value as of the observation's clinical time, within its
// freshness window and with an allowed observation status, normalised by
// pkg/clinical to the canonical unit, and passes them keyed by parameter
// name. The caller also checks Applicable (the score functions do too):
// the adult scores do not apply to a patient under 16 (PID-7), and the
// caller records the reason instead of a score.
//
// # Exact comparisons
//
// Values are exact decimals (github.com/shopspring/decimal), never floats.
// NEWS2 bands are inclusive cascades, v ≤ 8 → 3; v ≤ 11 → 1; ..., so a
// value between two printed bands falls in the band above it: 35.05 °C
// scores 1 (35.1–36.0) and SpO2 95.5 on scale 1 scores 0 (≥ 96).
// Temperatures arrive in °C, already converted and rounded half-up to 0.1
// by pkg/clinical; this package does not round again.
//
// # Missing values
//
// A parameter that is absent, or present but invalid (a negative number,
// an unknown code, a GCS outside 3–15, an FiO2 outside 21–100 %), is
// missing: the result is not Complete, the component is named in Missing
// and contributes nothing. Total is then a lower bound, and so is Risk. A
// lower bound can only under-state risk, so alerting on it never raises a
// false alarm; but only a complete score can show improvement, so an alert
// is resolved only on a complete score. A zero is a reading, not a missing
// value.
//
// # NEWS2
//
// Royal College of Physicians, National Early Warning Score (NEWS) 2,
// 2017: chart 1 (bands), chart 2 (SpO2 scale 2), chart 3 (thresholds and
// triggers), chart 4 (clinical response). Seven components:
//
//	respiratory_rate /min  ≤8 3 | 9–11 1 | 12–20 0 | 21–24 2 | ≥25 3
//	spo2 scale 1 %         ≤91 3 | 92–93 2 | 94–95 1 | ≥96 0
//	spo2 scale 2 %         ≤83 3 | 84–85 2 | 86–87 1 | 88–92 0 | ≥93 on air 0
//	                       | 93–94 on O2 1 | 95–96 on O2 2 | ≥97 on O2 3
//	on_oxygen              oxygen 2 | air 0
//	sbp mm[Hg]             ≤90 3 | 91–100 2 | 101–110 1 | 111–219 0 | ≥220 3
//	heart_rate /min        ≤40 3 | 41–50 1 | 51–90 0 | 91–110 1 | 111–130 2 | ≥131 3
//	consciousness          A 0 | C (new confusion), V, P, U 3
//	temperature °C         ≤35.0 3 | 35.1–36.0 1 | 36.1–38.0 0 | 38.1–39.0 1 | ≥39.1 2
//
// Scale 2 is a clinician's decision for a patient (Patient.SpO2Scale),
// never inferred from the value. On scale 2 a value above 92 % needs air
// or oxygen; when that is unknown the spo2 component is missing.
//
// Air or oxygen is derived from on_oxygen (charted oxygen or air), o2_flow
// (> 0 L/min oxygen, 0 air) and fio2 (> 21 % oxygen, 21 % air). When
// several are present the most recent by ObservedAt wins; on a tie,
// oxygen. Nothing says: on_oxygen is missing; air is never assumed.
//
// Total is 0–20. Risk: ≥ 7 high; 5–6 medium; a single parameter scoring 3
// with a total ≤ 4 low-medium; else low. The total wins over the single
// red score. Response is the chart 4 frequency of monitoring and clinical
// response for the risk, with two texts for low (total 0, total 1–4).
//
// # qSOFA
//
// Sepsis-3: Singer et al. and Seymour et al., JAMA 2016. One point each
// for respiratory_rate ≥ 22, sbp ≤ 100 and altered mentation (a GCS below
// Options.GCSThreshold, default 15; with no GCS, an ACVPU level other than
// alert). Positive at ≥ 2. It flags risk; it is not a diagnosis.
//
// # SIRS
//
// ACCP/SCCM Consensus Conference, 1992 (Bone et al., Chest 1992). Met at
// two or more of, all strict: temperature > 38 or < 36 °C; heart_rate >
// 90; respiratory_rate > 20 or paco2 < 32 mm[Hg]; wbc > 12 or < 4 ×10⁹/L
// or bands above 10 % of leukocytes.
//
// # Lineage
//
// Each component carries the value, time and event it was computed from.
// Result.Inputs lists the events of those values, plus, for a SIRS
// criterion with two inputs, the other input when it is present (both were
// evaluated). A value that did not take part is not an input: an air or
// oxygen source superseded by a more recent one (as an older reading of
// the same parameter is not an input either), an ACVPU level when qSOFA
// had a GCS, an invalid value.
package score
