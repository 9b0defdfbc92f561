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
		{name: "scoring"},
		{name: "destinations"},
		{name: "alerts"},
		{name: "feeds"},
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

var scoringObject = &object{
	what: "scoring",
	fields: []field{
		{name: "freshness"},
		{name: "statuses"},
		{name: "qsofa"},
		{name: "spo2_scale"},
	},
	elsewhere: map[string]string{
		"vitals": "freshness", "labs": "freshness", "parameters": "freshness",
		"gcs_threshold": "qsofa",
	},
}

var freshnessObject = &object{
	what: "freshness",
	fields: []field{
		{name: "vitals"},
		{name: "labs"},
		{name: "parameters"},
	},
}

var qsofaObject = &object{
	what: "qsofa",
	fields: []field{
		{name: "gcs_threshold"},
	},
}

var destinationObject = &object{
	what: "destination",
	fields: []field{
		{name: "webhook"},
		{name: "notify"},
		{name: "log"},
		{name: "max_attempts"},
		{name: "backoff"},
		{name: "max_backoff"},
	},
	elsewhere: map[string]string{
		"url": "webhook", "secret_env": "webhook", "secret_file": "webhook", "timeout": "webhook",
	},
	refused: map[string]string{
		"secret": secretRefused,
	},
}

var webhookObject = &object{
	what: "webhook",
	fields: []field{
		{name: "url", required: true},
		{name: "secret_env"},
		{name: "secret_file"},
		{name: "timeout"},
	},
	elsewhere: map[string]string{
		"max_attempts": "the destination", "backoff": "the destination", "max_backoff": "the destination",
	},
	refused: map[string]string{
		"secret":  secretRefused,
		"key":     secretRefused,
		"hmac":    secretRefused,
		"token":   secretRefused,
		"api_key": secretRefused,
	},
}

// secretRefused is the reason a key that would hold a secret in
// routes.yaml is refused. The value is never repeated in the message.
const secretRefused = "a webhook's HMAC key must not be written in routes.yaml, which is kept in version control and printed in logs: " +
	"put it in an environment variable and name it with secret_env, or in a file named with secret_file"

var alertObject = &object{
	what: "alert rule",
	fields: []field{
		{name: "name", required: true},
		{name: "score", required: true},
		{name: "levels", required: true},
		{name: "renotify_after"},
		{name: "destinations", required: true},
	},
	elsewhere: map[string]string{
		"severity": "levels", "when": "levels",
	},
}

var feedObject = &object{
	what: "feed",
	fields: []field{
		{name: "name", required: true},
		{name: "sending_application", required: true},
		{name: "sending_facility"},
		{name: "silence", required: true},
		{name: "active"},
		{name: "notify"},
	},
	refused: map[string]string{
		// Alert rules say destinations; a feed says notify. Refused with a
		// reason rather than only "unknown key", since the slip is likely.
		"destinations": "a feed names its destinations under notify",
	},
}

var levelObject = &object{
	what: "alert level",
	fields: []field{
		{name: "severity", required: true},
		{name: "when", required: true},
	},
}

var activeObject = &object{
	what: "feed's active hours",
	fields: []field{
		{name: "days"},
		{name: "from", required: true},
		{name: "to", required: true},
		{name: "timezone"},
	},
}
