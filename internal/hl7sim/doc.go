// Package hl7sim simulates a small ward's HL7 v2 feed, so that a newcomer
// can watch Aorta turn messages into events, scores and alerts (make demo)
// and the integration tests can prove that it does. It builds messages and
// does no I/O: cmd/hl7sim sends them over MLLP.
//
// A Ward holds a handful of patients with clearly fictional names and
// identifiers (MRN SIM0001 ..., assigning authority AORTA_SIM). Each is
// admitted with an ADT^A01 (Admission), then charted with LOINC-coded
// nursing vital signs, one ORU^R01 per reading (VitalSigns), coded exactly
// as the shipped routes.yaml maps them (nursing-vitals route), so every
// NEWS2 they produce is complete:
//
//	respiratory rate   9279-1    /min
//	SpO2               59408-5   %
//	air or oxygen      SNOMED CT 722742002 (room air) or 371825009 (on
//	                   oxygen), with the inhaled O2 flow 3151-8 in L/min
//	systolic BP        8480-6    mm[Hg] (and diastolic 8462-4)
//	heart rate         8867-4    /min
//	ACVPU              67775-7   SNOMED CT answers (248234008 alert,
//	                             130987000 new confusion)
//	temperature        8310-5    Cel
//
// and a white cell count on admission (LabResult: 6690-2 in 10*9/L, the
// lab-results route), so that SIRS is complete too.
//
// Patient 1 deteriorates on a fixed script (Deterioration): rising
// respiratory and heart rates and a temperature, falling SpO2 and blood
// pressure, then oxygen, then new confusion. NEWS2 stays at 4 or below
// without a single red score until reading AlertReading, where it jumps to
// 7 or more, so the shipped rules raise an emergency alert directly (not
// an urgent one escalated); it then worsens, plateaus, recovers (the
// alerts resolve) and starts again every CycleLength readings. The other
// adults drift at random within the bands that score 0, deterministically
// for a seed. With Options.Child, the last patient is a child, for whom
// the router records score.skipped instead of scores.
//
// Update (ADT^A08), LabReport (several orders and results) and
// MonitorResult (IHE PCD-01, MDC codes) complete the set of builders for
// internal/loadgen, which sends a ward's feed at scale (cmd/hl7load).
package hl7sim
