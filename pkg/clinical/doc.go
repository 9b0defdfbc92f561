// Package clinical defines the clinical parameters Aorta scores and alerts
// on (heart_rate, spo2, temperature, consciousness, ...), the observation
// codes that carry them, and the normalisation of their values to one
// canonical unit. routes.yaml declares the tables; the event mapping uses
// them to turn an OBX into a typed observation.
//
// Values are exact decimals (github.com/shopspring/decimal), never floats:
// NEWS2 bands are compared at their printed precision, and a value such as
// 35.05 °C must compare exactly. DefaultParameters is the reference table
// from the project's clinical reference (NEWS2, qSOFA, SIRS codes and
// units); the shipped routes.yaml is tested against it.
//
// Errors never quote the observation value, which is clinical data;
// they may quote a unit, which is not.
package clinical
