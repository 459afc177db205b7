-- Children's Services case system: referrals made on the logical date.
-- :ds is bound to the run's logical date (YYYY-MM-DD). Select only what the
-- agreement may need; the pipeline still drops any column the agreement does not name.
SELECT referral_id, nhs_number, forename, surname, date_of_birth, postcode,
       referral_date, risk_level, category
FROM referrals
WHERE referral_date = :ds
ORDER BY referral_id
