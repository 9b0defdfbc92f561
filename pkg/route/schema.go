package route

// The keys each kind of mapping accepts. doc.go describes every one of
// them, with its default and an example, and testdata/example.yaml uses
// every one; TestSchemaDocumented keeps the three in step.

var fileObject = &object{
	what: "routes file",
	fields: []field{
		{name: "version", required: true},
		{name: "timezone"},
		{name: "parameters"},
		{name: "routes", required: true},
	},
}

var parameterObject = &object{
	what: "parameter",
	fields: []field{
		{name: "description"},
		{name: "type"},
		{name: "unit"},
		{name: "codes", required: true},
		{name: "units"},
		{name: "answers"},
	},
}

var conversionObject = &object{
	what: "unit conversion",
	fields: []field{
		{name: "factor"},
		{name: "offset"},
	},
}

var routeObject = &object{
	what: "route",
	fields: []field{
		{name: "name", required: true},
		{name: "description"},
		{name: "match", required: true},
		{name: "events"},
		{name: "handlers"},
		{name: "parameters"},
		{name: "on_invalid"},
		{name: "preliminary"},
		{name: "continue"},
		{name: "timezone"},
	},
	elsewhere: map[string]string{
		"message_type": "match", "trigger_event": "match",
		"sending_application": "match", "sending_facility": "match",
		"receiving_application": "match", "receiving_facility": "match",
		"version": "match", "processing_id": "match", "where": "match",
	},
}

var matchObject = &object{
	what: "match",
	fields: []field{
		{name: "message_type"},
		{name: "trigger_event"},
		{name: "sending_application"},
		{name: "sending_facility"},
		{name: "receiving_application"},
		{name: "receiving_facility"},
		{name: "version"},
		{name: "processing_id"},
		{name: "where"},
	},
	elsewhere: map[string]string{
		"name": "the route", "description": "the route", "events": "the route",
		"handlers": "the route", "parameters": "the route", "on_invalid": "the route",
		"preliminary": "the route", "continue": "the route", "timezone": "the route",
	},
}

var testFileObject = &object{
	what: "route test file",
	fields: []field{
		{name: "routes", required: true},
		{name: "tests", required: true},
	},
}

var testObject = &object{
	what: "test",
	fields: []field{
		{name: "name", required: true},
		{name: "messages", required: true},
		{name: "expect", required: true},
	},
}

var messageFileObject = &object{
	what: "message",
	fields: []field{
		{name: "file", required: true},
	},
}

var expectObject = &object{
	what: "expectation",
	fields: []field{
		{name: "route", required: true},
		{name: "dead_letter"},
		{name: "warnings"},
		{name: "events"},
	},
}

var eventObject = &object{
	what: "expected event",
	fields: []field{
		{name: "type", required: true},
		{name: "occurred_at"},
		{name: "patient_id"},
		{name: "patient_key"},
		{name: "encounter_id"},
		{name: "source"},
		{name: "route"},
		{name: "payload"},
	},
}
