-- The credit profile (hub/src/credit/) looks a subject up in the credit datasets and the
-- administrative penalties by its unified social credit code or its resident identity
-- number, fields of the records' JSON. These expression indexes make each lookup an index
-- scan rather than a scan of the repository; they hold only those four datasets' rows. The
-- expressions and the predicate are repeated word for word in hub/src/credit/store.rs, so
-- that the planner can use them.
CREATE INDEX repository_records_credit_code
    ON repository_records ((COALESCE(data->>'subject_credit_code', data->>'party_credit_code')))
    WHERE dataset IN ('credit-commitments', 'credit-red-list', 'credit-black-list',
                      'administrative-penalties');

CREATE INDEX repository_records_credit_id_number
    ON repository_records ((COALESCE(data->>'subject_id_number', data->>'party_id_number')))
    WHERE dataset IN ('credit-commitments', 'credit-red-list', 'credit-black-list',
                      'administrative-penalties');
