#!/usr/bin/env python3
"""Generate the demo PDF documents of the MedGemma Workbench corpus.

The text in this script is the source of truth for the two PDFs in data/corpus/:

    ecg_interpretation_handbook.pdf   (7 pages)
    heart_failure_guide.pdf           (6 pages)

Written for the MedGemma Workbench project as demo reference material.
Not medical advice; not a medical device.

fpdf2 is needed ONLY to regenerate the PDFs; it is not a project dependency.
Use a throwaway virtual environment, not the project venv:

    python3 -m venv /tmp/pdfenv && /tmp/pdfenv/bin/pip install fpdf2 pypdf
    /tmp/pdfenv/bin/python data/tools/make_pdfs.py

Constraints: only the core font Helvetica is used, so every string must be
latin-1 encodable (use "-" instead of en dashes, ">=" instead of the
greater-or-equal sign, and so on). Each section is written on its own page and
must fit on that page; the script fails if a section overflows, so page numbers
stay stable for the retrieval evaluation set (data/eval/retrieval.jsonl).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

NOTICE = (
    "Written for the MedGemma Workbench project as demo reference material. "
    "Not medical advice; not a medical device."
)

CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"

# A page is (heading, blocks). A block is ("p", text), ("h", subheading) or
# ("ul", [items]).

ECG_HANDBOOK = {
    "file": "ecg_interpretation_handbook.pdf",
    "title": "ECG Interpretation Handbook",
    "subtitle": "A short reference for reading the 12-lead electrocardiogram",
    "pages": [
        (
            "1. The 12-lead ECG and electrode placement",
            [
                ("p", "This handbook summarises well-established principles of reading a resting 12-lead "
                      "electrocardiogram (ECG) in adults. Each page covers one topic. It is general reference "
                      "material for a software demonstration and does not replace clinical training or local "
                      "guidance."),
                ("h", "Electrodes and leads"),
                ("p", "A standard 12-lead ECG is recorded from 10 electrodes: four limb electrodes and six chest "
                      "electrodes. The limb electrodes are placed on the right arm (RA), left arm (LA), left leg "
                      "(LL) and right leg (RL); the right leg electrode acts as the neutral (ground) electrode. "
                      "The six limb leads (I, II, III, aVR, aVL, aVF) view the heart in the frontal plane, and the "
                      "six chest leads (V1 to V6) view it in the horizontal plane."),
                ("h", "Chest electrode positions"),
                ("ul", [
                    "V1: fourth intercostal space at the right sternal border.",
                    "V2: fourth intercostal space at the left sternal border.",
                    "V3: midway between V2 and V4.",
                    "V4: fifth intercostal space in the left midclavicular line.",
                    "V5: left anterior axillary line, at the same horizontal level as V4.",
                    "V6: left midaxillary line, at the same horizontal level as V4 and V5.",
                ]),
                ("h", "Einthoven's triangle"),
                ("p", "The bipolar limb leads form Einthoven's triangle. Lead I records between the right arm and "
                      "the left arm, lead II between the right arm and the left leg, and lead III between the left "
                      "arm and the left leg. Einthoven's law states that the voltage in lead II equals the sum of "
                      "the voltages in leads I and III."),
                ("h", "Common recording errors"),
                ("ul", [
                    "Reversal of the left and right arm electrodes inverts the P wave, QRS complex and T wave in "
                    "lead I and makes lead aVR look upright; the chest leads are unaffected.",
                    "Placing the chest electrodes too high or too low changes the R wave progression and can mimic "
                    "infarction.",
                    "Movement, shivering and electrical interference produce artefact that can mimic arrhythmias.",
                ]),
            ],
        ),
        (
            "2. ECG paper, calibration and heart rate",
            [
                ("h", "Paper speed and grid"),
                ("p", "The standard paper speed is 25 mm per second. At this speed one small square (1 mm) "
                      "represents 0.04 seconds (40 ms) and one large square (5 mm) represents 0.20 seconds "
                      "(200 ms). Five large squares make one second. Some countries use 50 mm per second, which "
                      "doubles the width of every complex, so always check the paper speed printed on the "
                      "tracing."),
                ("h", "Voltage calibration"),
                ("p", "The standard calibration is 10 mm per millivolt, shown by a rectangular calibration pulse "
                      "10 mm high. Machines can record at half standard (5 mm per millivolt) when complexes are "
                      "very large; if this is not noticed, voltages will be underestimated."),
                ("h", "Heart rate: the 300 rule"),
                ("p", "For a regular rhythm, divide 300 by the number of large squares between two consecutive "
                      "R waves. The sequence to remember is:"),
                ("ul", [
                    "1 large square = 300 beats per minute",
                    "2 large squares = 150 beats per minute",
                    "3 large squares = 100 beats per minute",
                    "4 large squares = 75 beats per minute",
                    "5 large squares = 60 beats per minute",
                    "6 large squares = 50 beats per minute",
                ]),
                ("h", "Heart rate: the 1500 rule"),
                ("p", "For greater precision, especially at fast rates, divide 1500 by the number of small squares "
                      "between two consecutive R waves. For example, 20 small squares gives a rate of 75 beats per "
                      "minute."),
                ("h", "Heart rate: the six-second or ten-second method"),
                ("p", "For an irregular rhythm such as atrial fibrillation, the rules above are unreliable. A "
                      "standard 12-lead ECG records 10 seconds, so count the QRS complexes on the whole rhythm "
                      "strip and multiply by 6 to obtain the average rate per minute."),
                ("h", "Interpreting the rate"),
                ("p", "A resting rate of 60 to 100 beats per minute is conventionally normal in adults. A rate "
                      "below 60 is bradycardia and a rate above 100 is tachycardia. The atrial rate and the "
                      "ventricular rate should be measured separately when they differ, for example in atrial "
                      "flutter or complete heart block."),
            ],
        ),
        (
            "3. A systematic approach and normal values",
            [
                ("p", "Reading every ECG in the same order makes it less likely that an abnormality is missed. "
                      "A commonly taught sequence is:"),
                ("ul", [
                    "Step 1 - Check the patient details, date, time, paper speed and calibration.",
                    "Step 2 - Calculate the heart rate.",
                    "Step 3 - Assess the rhythm: regular or irregular, and the relationship of P waves to QRS "
                    "complexes.",
                    "Step 4 - Determine the cardiac axis.",
                    "Step 5 - Examine the P waves.",
                    "Step 6 - Measure the PR interval.",
                    "Step 7 - Examine the QRS complexes: duration, voltage and Q waves.",
                    "Step 8 - Examine the ST segments.",
                    "Step 9 - Examine the T waves and look for U waves.",
                    "Step 10 - Measure the QT interval and calculate the QTc.",
                ]),
                ("h", "Normal values in adults"),
                ("p", "These are general textbook reference values; laboratories and guidelines may quote slightly "
                      "different limits."),
                ("ul", [
                    "Heart rate: 60 to 100 beats per minute.",
                    "P wave: duration less than 120 ms and height less than 2.5 mm in lead II.",
                    "PR interval: 120 to 200 ms (3 to 5 small squares).",
                    "QRS duration: less than 120 ms (less than 3 small squares).",
                    "QTc: up to about 450 ms in men and about 460 to 470 ms in women.",
                    "Cardiac axis: between -30 and +90 degrees.",
                ]),
                ("h", "What abnormal intervals suggest"),
                ("ul", [
                    "A PR interval longer than 200 ms: first-degree AV block.",
                    "A PR interval shorter than 120 ms: pre-excitation (for example Wolff-Parkinson-White syndrome) "
                    "or a junctional rhythm.",
                    "A QRS duration of 120 ms or more: bundle branch block, ventricular rhythm, pre-excitation, "
                    "hyperkalaemia or sodium-channel-blocking drug toxicity.",
                    "A QTc above 500 ms: a markedly increased risk of torsades de pointes.",
                ]),
                ("h", "Context matters"),
                ("p", "Always compare with previous ECGs and interpret the tracing together with the patient's "
                      "symptoms and examination. A normal ECG does not exclude an acute coronary syndrome, and "
                      "serial ECGs may be needed."),
            ],
        ),
        (
            "4. The cardiac axis",
            [
                ("p", "The cardiac axis is the average direction of ventricular depolarisation in the frontal "
                      "plane, expressed in degrees. Lead I points to 0 degrees and lead aVF points to +90 degrees. "
                      "The normal axis lies between -30 and +90 degrees."),
                ("h", "The quick method: leads I and aVF"),
                ("ul", [
                    "QRS positive in lead I and positive in aVF: normal axis.",
                    "QRS positive in lead I and negative in aVF: possible left axis deviation; look at lead II. "
                    "If lead II is also predominantly negative, the axis is beyond -30 degrees and there is left "
                    "axis deviation. If lead II is positive, the axis is still within the normal range.",
                    "QRS negative in lead I and positive in aVF: right axis deviation.",
                    "QRS negative in both lead I and aVF: extreme axis deviation (sometimes called a northwest "
                    "axis).",
                ]),
                ("h", "Causes of left axis deviation"),
                ("ul", [
                    "Left anterior fascicular block (the commonest cause).",
                    "Inferior myocardial infarction.",
                    "Left bundle branch block and left ventricular hypertrophy (sometimes).",
                    "Ventricular pacing and ventricular tachycardia.",
                    "Some congenital heart defects, such as ostium primum atrial septal defect.",
                ]),
                ("h", "Causes of right axis deviation"),
                ("ul", [
                    "A normal finding in children and in tall, thin young adults.",
                    "Right ventricular hypertrophy and chronic lung disease (cor pulmonale).",
                    "Acute pulmonary embolism (right ventricular strain).",
                    "Left posterior fascicular block.",
                    "Lateral myocardial infarction.",
                    "Dextrocardia and reversal of the arm electrodes.",
                ]),
                ("h", "Extreme axis deviation"),
                ("p", "An axis between -90 and 180 degrees is unusual. It should prompt a check for electrode "
                      "misplacement and, in a broad-complex tachycardia, strongly suggests ventricular "
                      "tachycardia."),
            ],
        ),
        (
            "5. ST segments and T waves",
            [
                ("h", "Causes of ST elevation"),
                ("ul", [
                    "Acute ST-elevation myocardial infarction: territorial, often convex, with reciprocal ST "
                    "depression.",
                    "Acute pericarditis: widespread concave ST elevation with PR depression.",
                    "Left ventricular aneurysm: persistent ST elevation after a previous infarction.",
                    "Benign early repolarisation: common in young adults, often with notching at the J point.",
                    "Left bundle branch block and left ventricular hypertrophy (in the right chest leads).",
                    "Brugada pattern: coved ST elevation in V1 and V2.",
                    "Takotsubo cardiomyopathy.",
                ]),
                ("h", "Causes of ST depression"),
                ("ul", [
                    "Myocardial ischaemia, typically horizontal or downsloping ST depression.",
                    "Reciprocal change in ST-elevation myocardial infarction.",
                    "Posterior myocardial infarction: ST depression in V1 to V3 with tall R waves.",
                    "Digoxin effect: sagging, 'reverse tick' ST depression.",
                    "Left ventricular hypertrophy with strain pattern, and bundle branch block.",
                    "Hypokalaemia.",
                ]),
                ("h", "T-wave inversion"),
                ("p", "T-wave inversion is normal in lead aVR and often in V1, and may be seen in lead III. In "
                      "children and some young adults, inverted T waves in V1 to V3 can be normal (the juvenile T "
                      "wave pattern). Abnormal causes of T-wave inversion include:"),
                ("ul", [
                    "myocardial ischaemia and the evolving phase after myocardial infarction;",
                    "pulmonary embolism, classically in the right chest leads and lead III;",
                    "bundle branch block and ventricular hypertrophy with strain;",
                    "hypertrophic cardiomyopathy and arrhythmogenic right ventricular cardiomyopathy;",
                    "raised intracranial pressure, which can cause deep, wide 'cerebral' T waves.",
                ]),
                ("h", "Wellens syndrome"),
                ("p", "Wellens syndrome describes deep symmetrical T-wave inversion, or biphasic T waves, in V2 "
                      "and V3 in a patient with recent chest pain that has settled. It indicates a critical "
                      "stenosis of the proximal left anterior descending artery and a high risk of an extensive "
                      "anterior infarction."),
                ("h", "Peaked T waves"),
                ("p", "Tall, narrow, peaked T waves suggest hyperkalaemia. Broad-based tall T waves can be an "
                      "early (hyperacute) sign of myocardial infarction."),
            ],
        ),
        (
            "6. Tachycardias: narrow and broad complex",
            [
                ("p", "Tachycardias are first sorted by QRS width (narrow, less than 120 ms, or broad, 120 ms or "
                      "more) and by regularity. Before interpreting the rhythm, assess the patient for adverse "
                      "features: shock, syncope, myocardial ischaemia and heart failure. A tachycardia with "
                      "adverse features is usually treated with synchronised electrical cardioversion."),
                ("h", "Narrow-complex regular tachycardia"),
                ("ul", [
                    "Sinus tachycardia: gradual onset, normal P waves; treat the cause.",
                    "AV nodal re-entrant tachycardia (AVNRT): the commonest regular paroxysmal supraventricular "
                    "tachycardia in adults; abrupt onset and offset; P waves often hidden.",
                    "AV re-entrant tachycardia (AVRT) using an accessory pathway.",
                    "Atrial flutter with regular block, often 2:1 with a rate around 150 per minute.",
                    "Focal atrial tachycardia.",
                ]),
                ("p", "In a stable patient, vagal manoeuvres (such as the Valsalva manoeuvre) are tried first. "
                      "Adenosine, given under monitoring, briefly blocks the AV node: it terminates AVNRT and AVRT "
                      "and can unmask flutter waves."),
                ("h", "Narrow-complex irregular tachycardia"),
                ("ul", [
                    "Atrial fibrillation (the most common).",
                    "Atrial flutter with variable block.",
                    "Multifocal atrial tachycardia: at least three different P wave shapes, classically in severe "
                    "chronic lung disease.",
                ]),
                ("h", "Broad-complex regular tachycardia"),
                ("ul", [
                    "Ventricular tachycardia (the most common cause, especially with previous myocardial "
                    "infarction or structural heart disease).",
                    "Supraventricular tachycardia with bundle branch block or aberrant conduction.",
                    "Pre-excited tachycardia conducted over an accessory pathway.",
                ]),
                ("h", "Broad-complex irregular tachycardia"),
                ("ul", [
                    "Atrial fibrillation with bundle branch block.",
                    "Pre-excited atrial fibrillation in Wolff-Parkinson-White syndrome.",
                    "Polymorphic ventricular tachycardia, including torsades de pointes.",
                ]),
                ("h", "The safe rule"),
                ("p", "A broad-complex tachycardia should be treated as ventricular tachycardia until proven "
                      "otherwise. Features that favour ventricular tachycardia include AV dissociation, capture "
                      "beats, fusion beats, extreme axis deviation and concordance of the chest leads."),
            ],
        ),
        (
            "7. Electrolytes, drugs and the QT interval",
            [
                ("h", "Potassium"),
                ("ul", [
                    "Hyperkalaemia: peaked T waves, then flattening and loss of P waves, PR prolongation, QRS "
                    "widening and finally a sine wave pattern, ventricular fibrillation or asystole.",
                    "Hypokalaemia: flattened T waves, prominent U waves, ST depression and an apparently long QT "
                    "(really QU) interval.",
                ]),
                ("h", "Calcium and magnesium"),
                ("ul", [
                    "Hypercalcaemia shortens the QT interval.",
                    "Hypocalcaemia prolongs the QT interval, mainly by lengthening the ST segment.",
                    "Hypomagnesaemia increases the risk of torsades de pointes and often accompanies hypokalaemia.",
                ]),
                ("h", "Temperature"),
                ("p", "Hypothermia causes sinus bradycardia, prolongation of all intervals, shivering artefact and "
                      "Osborn waves (J waves), a positive hump at the junction of the QRS complex and the ST "
                      "segment."),
                ("h", "Drugs and the ECG"),
                ("ul", [
                    "Digoxin: 'reverse tick' ST depression (digoxin effect); toxicity can cause almost any "
                    "arrhythmia.",
                    "Sodium-channel blockers, including tricyclic antidepressants in overdose: QRS widening and a "
                    "dominant terminal R wave in aVR.",
                    "Beta-blockers and non-dihydropyridine calcium channel blockers: bradycardia and AV block.",
                ]),
                ("h", "Drugs that prolong the QT interval"),
                ("p", "Many medicines prolong the QT interval. Examples include class Ia and class III "
                      "antiarrhythmics (such as sotalol and amiodarone), some macrolide antibiotics (such as "
                      "erythromycin and clarithromycin), some fluoroquinolones, some antipsychotics (such as "
                      "haloperidol), some antidepressants (such as citalopram), methadone, ondansetron and "
                      "domperidone."),
                ("h", "Risk factors for drug-induced torsades de pointes"),
                ("ul", [
                    "Female sex and older age.",
                    "Hypokalaemia, hypomagnesaemia and hypocalcaemia.",
                    "Bradycardia and recent conversion from atrial fibrillation.",
                    "Structural heart disease and congenital long QT syndrome.",
                    "Taking more than one QT-prolonging drug, or drugs that inhibit their metabolism.",
                ]),
            ],
        ),
    ],
}

HEART_FAILURE_GUIDE = {
    "file": "heart_failure_guide.pdf",
    "title": "Heart Failure: A Reference Guide",
    "subtitle": "Definitions, causes, assessment, treatment principles and self-care",
    "pages": [
        (
            "1. What is heart failure?",
            [
                ("p", "Heart failure is a clinical syndrome in which the heart cannot pump enough blood to meet the "
                      "needs of the body, or can do so only at raised filling pressures. It is caused by "
                      "structural or functional abnormalities of the heart and produces typical symptoms such as "
                      "breathlessness, fatigue and ankle swelling. Heart failure is common, particularly in older "
                      "people, and is a frequent cause of hospital admission."),
                ("p", "The term 'heart failure' does not mean that the heart has stopped working. It means the "
                      "heart is not working as well as it should. Many people live for years with heart failure, "
                      "and treatment can improve symptoms and survival."),
                ("h", "Classification by ejection fraction"),
                ("p", "The left ventricular ejection fraction (LVEF) is the percentage of blood pumped out of the "
                      "left ventricle with each beat. It is used to classify heart failure:"),
                ("ul", [
                    "Heart failure with reduced ejection fraction (HFrEF): LVEF 40% or less.",
                    "Heart failure with mildly reduced ejection fraction (HFmrEF): LVEF 41% to 49%.",
                    "Heart failure with preserved ejection fraction (HFpEF): LVEF 50% or more.",
                ]),
                ("h", "Other useful descriptions"),
                ("ul", [
                    "Acute heart failure: rapid onset or worsening of symptoms and signs, requiring urgent "
                    "treatment. It may be a first presentation or a decompensation of chronic heart failure.",
                    "Chronic heart failure: established heart failure with symptoms that are stable or slowly "
                    "changing.",
                    "Left-sided heart failure mainly causes congestion in the lungs and breathlessness.",
                    "Right-sided heart failure mainly causes raised venous pressure, leg swelling, liver "
                    "congestion and ascites. The commonest cause of right heart failure is left heart failure.",
                ]),
            ],
        ),
        (
            "2. Causes and precipitating factors",
            [
                ("h", "Underlying causes"),
                ("ul", [
                    "Coronary artery disease and previous myocardial infarction.",
                    "Hypertension.",
                    "Valvular heart disease, such as aortic stenosis and mitral regurgitation.",
                    "Cardiomyopathies: dilated, hypertrophic, restrictive and arrhythmogenic.",
                    "Arrhythmias, including persistent fast atrial fibrillation (tachycardia-induced "
                    "cardiomyopathy).",
                    "Myocarditis.",
                    "Toxins: excess alcohol, cocaine and cardiotoxic cancer treatments such as anthracyclines.",
                    "Infiltrative diseases such as amyloidosis and sarcoidosis.",
                    "Congenital heart disease.",
                    "Pericardial disease, such as constrictive pericarditis.",
                ]),
                ("h", "High-output heart failure"),
                ("p", "Less commonly, heart failure occurs because the body demands an unusually high cardiac "
                      "output. Causes include severe anaemia, thyrotoxicosis, large arteriovenous fistulas, "
                      "Paget disease of bone and thiamine deficiency (wet beriberi)."),
                ("h", "Factors that precipitate decompensation"),
                ("p", "People with chronic heart failure can deteriorate suddenly. Common triggers include:"),
                ("ul", [
                    "acute coronary syndrome;",
                    "new arrhythmias, especially atrial fibrillation with a fast ventricular rate;",
                    "infections such as pneumonia;",
                    "uncontrolled hypertension;",
                    "not taking prescribed medicines, or excess salt and fluid intake;",
                    "medicines that cause fluid retention or reduce cardiac function, such as NSAIDs, "
                    "non-dihydropyridine calcium channel blockers in HFrEF, and thiazolidinediones such as "
                    "pioglitazone;",
                    "excess alcohol;",
                    "worsening kidney function, anaemia, thyroid disease and pulmonary embolism.",
                ]),
                ("p", "Identifying and treating the trigger is a key part of managing an episode of acute heart "
                      "failure."),
            ],
        ),
        (
            "3. Symptoms, signs and NYHA classification",
            [
                ("h", "Symptoms"),
                ("ul", [
                    "Breathlessness on exertion, progressing to breathlessness at rest.",
                    "Orthopnoea: breathlessness when lying flat, so that extra pillows are needed.",
                    "Paroxysmal nocturnal dyspnoea: waking at night acutely breathless.",
                    "Fatigue and reduced exercise tolerance.",
                    "Ankle, leg or abdominal swelling, and weight gain from fluid retention.",
                    "Nocturnal cough or wheeze, loss of appetite and confusion in older people.",
                ]),
                ("h", "Signs"),
                ("ul", [
                    "Tachycardia and sometimes an irregular pulse.",
                    "Raised jugular venous pressure.",
                    "A displaced apex beat in a dilated heart.",
                    "A third heart sound (gallop rhythm).",
                    "Crackles at the lung bases and pleural effusions.",
                    "Pitting peripheral oedema, hepatomegaly and ascites.",
                    "Cool peripheries and low blood pressure in advanced or acute heart failure.",
                ]),
                ("h", "New York Heart Association (NYHA) functional classification"),
                ("ul", [
                    "Class I: no limitation of physical activity. Ordinary physical activity does not cause "
                    "undue breathlessness, fatigue or palpitations.",
                    "Class II: slight limitation of physical activity. Comfortable at rest, but ordinary physical "
                    "activity causes symptoms.",
                    "Class III: marked limitation of physical activity. Comfortable at rest, but less than "
                    "ordinary activity causes symptoms.",
                    "Class IV: unable to carry out any physical activity without discomfort. Symptoms may be "
                    "present at rest.",
                ]),
                ("p", "The NYHA class describes symptoms and can change with treatment. The ACC/AHA stages A to D "
                      "describe progression of the disease, from people at risk (stage A) to advanced heart "
                      "failure (stage D), and do not move backwards."),
            ],
        ),
        (
            "4. Investigations",
            [
                ("h", "Natriuretic peptides"),
                ("p", "B-type natriuretic peptide (BNP) and NT-proBNP are released by the ventricles when they are "
                      "stretched. A normal level makes heart failure unlikely. In the non-acute setting, European "
                      "guidance uses thresholds of BNP below 35 pg/mL and NT-proBNP below 125 pg/mL to rule out "
                      "heart failure. Raised levels lead to echocardiography. Levels are increased by age, atrial "
                      "fibrillation and kidney disease and may be lower in obesity."),
                ("h", "Electrocardiogram"),
                ("p", "An ECG may show the cause or a complication, such as previous myocardial infarction, left "
                      "ventricular hypertrophy, atrial fibrillation or left bundle branch block. A completely "
                      "normal ECG makes heart failure with reduced ejection fraction unlikely."),
                ("h", "Echocardiography"),
                ("p", "Transthoracic echocardiography is the key investigation. It measures the LVEF, shows "
                      "chamber size, wall thickness and wall motion, assesses diastolic function and the valves, "
                      "and estimates pulmonary artery pressure."),
                ("h", "Chest X-ray: the ABCDE of pulmonary oedema"),
                ("ul", [
                    "A - Alveolar oedema, sometimes in a 'bat's wing' distribution.",
                    "B - Kerley B lines (interstitial oedema).",
                    "C - Cardiomegaly: a cardiothoracic ratio greater than 0.5 on a posteroanterior film.",
                    "D - Dilated upper lobe vessels (upper lobe diversion).",
                    "E - Pleural effusions.",
                ]),
                ("h", "Blood tests"),
                ("p", "Kidney function and electrolytes, full blood count, liver function, thyroid function, "
                      "glucose or HbA1c, lipids, and iron studies (ferritin and transferrin saturation), because "
                      "iron deficiency is common in heart failure and can be treated."),
                ("h", "Further tests"),
                ("p", "Depending on the likely cause: coronary angiography or CT coronary angiography, cardiac "
                      "MRI (for example for cardiomyopathies and myocarditis), ambulatory ECG monitoring, and "
                      "genetic testing in suspected inherited cardiomyopathy."),
            ],
        ),
        (
            "5. Treatment of HFrEF: medicines and devices",
            [
                ("p", "This page describes general treatment principles. It contains no doses; prescribing and "
                      "dose adjustment are decisions for the treating clinical team."),
                ("h", "The four pillars of disease-modifying therapy"),
                ("ul", [
                    "Renin-angiotensin system blockade: an ACE inhibitor, an angiotensin receptor blocker, or "
                    "sacubitril/valsartan (an angiotensin receptor-neprilysin inhibitor, ARNI).",
                    "A beta-blocker licensed for heart failure, such as bisoprolol, carvedilol or metoprolol "
                    "succinate.",
                    "A mineralocorticoid receptor antagonist, such as spironolactone or eplerenone.",
                    "An SGLT2 inhibitor, such as dapagliflozin or empagliflozin.",
                ]),
                ("p", "These medicines reduce mortality and hospital admissions. They are usually started at a low "
                      "dose and increased gradually, with monitoring of blood pressure, heart rate, kidney "
                      "function and potassium."),
                ("h", "Diuretics"),
                ("p", "Loop diuretics, such as furosemide, relieve breathlessness and oedema caused by fluid "
                      "overload. They are adjusted to the lowest amount that keeps the patient free of "
                      "congestion. They improve symptoms but have not been shown to improve survival."),
                ("h", "Other medicines for selected patients"),
                ("ul", [
                    "Ivabradine, for patients in sinus rhythm whose heart rate remains high.",
                    "Hydralazine with isosorbide dinitrate, particularly for some patients of African or "
                    "African-Caribbean descent or those unable to take renin-angiotensin system blockers.",
                    "Digoxin, for symptoms or for rate control in atrial fibrillation.",
                    "Intravenous iron for iron deficiency.",
                ]),
                ("h", "Devices"),
                ("ul", [
                    "An implantable cardioverter-defibrillator (ICD) reduces the risk of sudden arrhythmic death "
                    "in selected patients with an LVEF of 35% or less despite optimal medical therapy.",
                    "Cardiac resynchronisation therapy (CRT), a biventricular pacemaker, benefits selected "
                    "patients with an LVEF of 35% or less and a broad QRS complex, particularly with left bundle "
                    "branch block.",
                ]),
                ("h", "Medicines to avoid or use with caution in HFrEF"),
                ("p", "NSAIDs, non-dihydropyridine calcium channel blockers (verapamil and diltiazem), "
                      "thiazolidinediones and class I antiarrhythmic drugs such as flecainide."),
            ],
        ),
        (
            "6. Acute heart failure and self-care",
            [
                ("h", "Acute heart failure"),
                ("p", "Acute heart failure is a medical emergency. The most dramatic form is acute pulmonary "
                      "oedema: severe breathlessness, inability to lie flat, frothy or pink sputum, crackles "
                      "throughout the chest and low oxygen levels. Cardiogenic shock is the most severe form, with "
                      "low blood pressure and poor organ perfusion."),
                ("p", "Hospital management principles include sitting the patient upright, oxygen if oxygen "
                      "saturation is low, intravenous loop diuretics, vasodilators such as nitrates when blood "
                      "pressure allows, non-invasive ventilation in selected patients, and identification and "
                      "treatment of the precipitating cause."),
                ("h", "Self-care: daily weights"),
                ("p", "Fluid build-up shows on the scales before it causes obvious swelling. People with heart "
                      "failure are commonly advised to weigh themselves every morning, after passing urine and "
                      "before eating, on the same scales and in similar clothing, and to record the result. A "
                      "weight gain of more than 2 kg in 3 days is a widely used warning threshold that should "
                      "prompt contact with the heart failure team or general practitioner."),
                ("h", "Self-care: everyday measures"),
                ("ul", [
                    "Take medicines as prescribed and do not stop them without advice.",
                    "Avoid excess salt; follow any individual fluid advice given by the care team.",
                    "Stay physically active; cardiac rehabilitation improves exercise capacity and quality of "
                    "life.",
                    "Stop smoking and keep alcohol within recommended limits.",
                    "Have annual influenza vaccination and pneumococcal vaccination.",
                    "Check with a pharmacist before taking over-the-counter anti-inflammatory painkillers.",
                ]),
                ("h", "Warning signs"),
                ("p", "Contact the heart failure team or general practitioner promptly for increasing "
                      "breathlessness, needing more pillows at night, increasing ankle or abdominal swelling, "
                      "rapid weight gain or dizziness. Call the emergency services for severe breathlessness at "
                      "rest, chest pain, fainting, or coughing up frothy pink sputum."),
                ("h", "Advanced heart failure"),
                ("p", "For people with advanced heart failure, palliative care can run alongside active treatment "
                      "to manage symptoms and support patients and families."),
            ],
        ),
    ],
}

FIXED_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)


def check_latin1(text: str) -> None:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:  # pragma: no cover - guard for editors
        raise SystemExit(f"non latin-1 character in PDF text: {text!r}: {exc}")


class HandbookPDF(FPDF):
    def __init__(self, doc_title: str):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc_title = doc_title
        self.set_margins(20, 18, 20)
        self.set_auto_page_break(auto=True, margin=20)

    def header(self):
        if self.page_no() == 1:
            return
        self.set_font("Helvetica", "I", 8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, f"{self.doc_title} - MedGemma Workbench demo reference",
                  new_x="LMARGIN", new_y="NEXT", align="L")
        self.ln(3)
        self.set_text_color(0, 0, 0)

    def footer(self):
        self.set_y(-14)
        self.set_font("Helvetica", "I", 8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, f"Not medical advice; not a medical device.   Page {self.page_no()}/{{nb}}",
                  align="C")
        self.set_text_color(0, 0, 0)


def render(doc: dict) -> Path:
    pdf = HandbookPDF(doc["title"])
    pdf.set_title(doc["title"])
    pdf.set_author("MedGemma Workbench project")
    pdf.set_subject(NOTICE)
    pdf.set_creator("data/tools/make_pdfs.py (fpdf2)")
    pdf.set_creation_date(FIXED_DATE)

    body = 10
    line_h = 5.0
    for index, (heading, blocks) in enumerate(doc["pages"], start=1):
        pdf.add_page()
        if index == 1:
            check_latin1(NOTICE)
            pdf.set_font("Helvetica", "I", 9)
            pdf.set_fill_color(235, 235, 235)
            pdf.multi_cell(0, 5, NOTICE, fill=True, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
            pdf.set_font("Helvetica", "B", 18)
            check_latin1(doc["title"])
            pdf.multi_cell(0, 9, doc["title"], new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 11)
            check_latin1(doc["subtitle"])
            pdf.multi_cell(0, 6, doc["subtitle"], new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        check_latin1(heading)
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        for kind, content in blocks:
            if kind == "h":
                check_latin1(content)
                pdf.ln(1.5)
                pdf.set_font("Helvetica", "B", 11)
                pdf.multi_cell(0, 6, content, new_x="LMARGIN", new_y="NEXT")
            elif kind == "p":
                check_latin1(content)
                pdf.set_font("Helvetica", "", body)
                pdf.multi_cell(0, line_h, content, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            elif kind == "ul":
                pdf.set_font("Helvetica", "", body)
                for item in content:
                    check_latin1(item)
                    pdf.set_x(pdf.l_margin + 3)
                    pdf.cell(4, line_h, "-")
                    pdf.multi_cell(0, line_h, item, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            else:
                raise ValueError(kind)
        if pdf.page_no() != index:
            raise SystemExit(f"{doc['file']}: section {index} ({heading!r}) overflowed onto another page")
    out = CORPUS_DIR / doc["file"]
    pdf.output(str(out))
    return out


def main() -> int:
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    for doc in (ECG_HANDBOOK, HEART_FAILURE_GUIDE):
        path = render(doc)
        print(f"wrote {path} ({len(doc['pages'])} pages, {path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
