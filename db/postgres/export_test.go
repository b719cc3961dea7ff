package postgres

// Exported for the tests of package postgres_test.
var (
	IsUniqueOn            = isUniqueOn
	IsForeignKeyViolation = isForeignKeyViolation
	IsCheckViolation      = isCheckViolation
	IsRefusal             = isRefusal
	Classify              = classify
	IsRetryable           = isRetryable
)
